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
    """Every GenAI fact of ``span``. A group of attributes none of whose keys the span has is not read
    at all (most spans carry a few of these keys): what it would give is the field's default."""
    a = span.attributes
    op = as_str(a.get("gen_ai.operation.name")) or span.name.split(" ", 1)[0]
    kind: SpanKind = _GENAI_KINDS.get(op, "span")
    if (
        kind == "span"
        and ("gen_ai.system" in a or "gen_ai.provider.name" in a)
        and "gen_ai.request.model" in a
    ):
        kind = "llm"
    facts = SpanFacts(convention=convention, kind=kind)
    error_type = as_str(a.get("error.type")) if "error.type" in a else None
    if span.error and not error_type:
        error_type = next(
            (
                as_str(ev["attributes"].get("exception.type"))
                for ev in span.events
                if ev["name"] == "exception"
            ),
            None,
        )
    facts.error_type = error_type
    facts.failed = span.error or bool(error_type)
    if "http.response.status_code" in a:
        status_code = as_int(a["http.response.status_code"])
        facts.status_code = status_code if status_code is not None and status_code <= 999 else None
    if "gen_ai.response.model" in a or "gen_ai.request.model" in a:
        facts.model = as_str(first(a, "gen_ai.response.model", "gen_ai.request.model"))
    if "gen_ai.usage.input_tokens" in a or "gen_ai.usage.prompt_tokens" in a:
        facts.tokens_in = as_int(first(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"))
    if "gen_ai.usage.output_tokens" in a or "gen_ai.usage.completion_tokens" in a:
        facts.tokens_out = as_int(first(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"))
    if "gen_ai.usage.cost" in a:
        facts.cost_usd = as_float(a["gen_ai.usage.cost"])
    if "gen_ai.input.messages" in a or "gen_ai.prompt" in a or "input.value" in a:
        facts.input = first(a, "gen_ai.input.messages", "gen_ai.prompt", "input.value")
    if "gen_ai.output.messages" in a or "gen_ai.completion" in a or "output.value" in a:
        facts.output = first(a, "gen_ai.output.messages", "gen_ai.completion", "output.value")
    if "gen_ai.agent.name" in a:
        facts.agent_name = as_str(a["gen_ai.agent.name"])
    if "gen_ai.agent.version" in a:
        facts.agent_version = as_str(a["gen_ai.agent.version"])
    if "gen_ai.tool.name" in a:
        facts.tool_name = as_str(a["gen_ai.tool.name"])
    if "gen_ai.tool.call.id" in a:
        facts.tool_call_id = as_str(a["gen_ai.tool.call.id"])
    if "gen_ai.tool.call.arguments" in a:
        facts.tool_args = parse_json_text(a["gen_ai.tool.call.arguments"])
    if "gen_ai.tool.call.result" in a:
        facts.tool_result = a["gen_ai.tool.call.result"]
    if "session.id" in a or "gen_ai.conversation.id" in a:
        facts.session_id = as_str(first(a, "session.id", "gen_ai.conversation.id"))
    if "user.id" in a or "enduser.id" in a:
        facts.user_id = as_str(first(a, "user.id", "enduser.id"))
    if "gen_ai.conversation.id" in a:
        facts.conversation_id = as_str(a["gen_ai.conversation.id"])
    r = span.resource
    if r or "deployment.environment.name" in a:
        facts.environment = as_str(
            first(r, "deployment.environment.name", "deployment.environment")
            or a.get("deployment.environment.name")
        )
    return facts
