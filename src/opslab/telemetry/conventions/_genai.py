"""OpenTelemetry GenAI: the base every reader starts from, and the whole reading of a GenAI span."""

from __future__ import annotations

from opslab.telemetry.conventions._facts import Convention, SpanFacts, SpanKind
from opslab.telemetry.conventions._values import as_float, as_int, as_str, first, parse_json_text
from opslab.telemetry.otlp import Span

_GENAI_KINDS: dict[str, SpanKind] = {
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "agent",
    "execute_tool": "tool",
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "embedding",
}


def read_genai(span: Span, convention: Convention) -> SpanFacts:
    a = span.attributes
    op = as_str(a.get("gen_ai.operation.name")) or span.name.split(" ", 1)[0]
    kind: SpanKind = _GENAI_KINDS.get(op, "span")
    if (
        kind == "span"
        and ("gen_ai.system" in a or "gen_ai.provider.name" in a)
        and "gen_ai.request.model" in a
    ):
        kind = "llm"
    status_code = as_int(a.get("http.response.status_code"))
    error_type = as_str(a.get("error.type"))
    if span.error and not error_type:
        error_type = next(
            (
                as_str(ev["attributes"].get("exception.type"))
                for ev in span.events
                if ev["name"] == "exception"
            ),
            None,
        )
    return SpanFacts(
        convention=convention,
        kind=kind,
        model=as_str(first(a, "gen_ai.response.model", "gen_ai.request.model")),
        tokens_in=as_int(first(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
        tokens_out=as_int(first(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
        cost_usd=as_float(a.get("gen_ai.usage.cost")),
        input=first(a, "gen_ai.input.messages", "gen_ai.prompt", "input.value"),
        output=first(a, "gen_ai.output.messages", "gen_ai.completion", "output.value"),
        agent_name=as_str(a.get("gen_ai.agent.name")),
        agent_version=as_str(a.get("gen_ai.agent.version")),
        tool_name=as_str(a.get("gen_ai.tool.name")),
        tool_call_id=as_str(a.get("gen_ai.tool.call.id")),
        tool_args=parse_json_text(a.get("gen_ai.tool.call.arguments")),
        tool_result=a.get("gen_ai.tool.call.result"),
        error_type=error_type,
        failed=span.error or bool(error_type),
        status_code=status_code if status_code is not None and status_code <= 999 else None,
        session_id=as_str(first(a, "session.id", "gen_ai.conversation.id")),
        user_id=as_str(first(a, "user.id", "enduser.id")),
        conversation_id=as_str(a.get("gen_ai.conversation.id")),
        environment=as_str(
            first(span.resource, "deployment.environment.name", "deployment.environment")
            or a.get("deployment.environment.name")
        ),
    )
