"""What one span says, whichever instrumentation wrote it: one reader per semantic convention.

A span is read by the convention its attributes name (chosen per span: an export may mix them), and
every reader falls back to the OpenTelemetry GenAI attributes for what its own convention leaves out:

- **OpenInference** (Arize Phoenix): ``openinference.span.kind`` (AGENT, CHAIN, LLM, TOOL, RETRIEVER …),
  ``llm.model_name``, ``llm.token_count.prompt``/``completion``, ``input.value``/``output.value``,
  ``tool.name``/``tool.parameters``, ``session.id``, ``user.id``, ``tag.tags``, ``metadata``;
- **OpenLLMetry** (Traceloop): ``traceloop.span.kind`` (workflow, task, agent, tool),
  ``traceloop.entity.name``/``input``/``output``, ``traceloop.association.properties.*``,
  ``gen_ai.usage.prompt_tokens``/``completion_tokens``, ``llm.request.type``;
- **Langfuse** (SDK v3+): ``langfuse.observation.type`` (span, generation, agent, tool, chain …),
  ``langfuse.observation.model.name``/``usage_details``/``cost_details``/``input``/``output``/``level``,
  ``langfuse.trace.tags``/``metadata.*``, ``user.id``, ``session.id``;
- **OTel GenAI**: ``gen_ai.operation.name`` (invoke_agent, chat, execute_tool …), ``gen_ai.agent.name``,
  ``gen_ai.request.model``/``response.model``, ``gen_ai.usage.input_tokens``/``output_tokens``,
  ``gen_ai.tool.*``, ``gen_ai.conversation.id``, ``error.type``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_core import from_json

from opslab.telemetry.otlp import Span

Convention = Literal["openinference", "openllmetry", "langfuse", "genai"]
SpanKind = Literal[
    "agent", "chain", "llm", "embedding", "tool", "retriever", "guardrail", "evaluator", "span"
]
AGENT_LIKE: frozenset[str] = frozenset({"agent", "chain"})
MODEL_KINDS: frozenset[str] = frozenset({"llm", "embedding"})


@dataclass(slots=True)
class SpanFacts:
    """The convention-free reading of one span."""

    convention: Convention
    kind: SpanKind
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    input: Any = None
    output: Any = None
    agent_name: str | None = None
    agent_version: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    tool_args: Any = None
    tool_result: Any = None
    error_type: str | None = None
    failed: bool = False
    status_code: int | None = None
    session_id: str | None = None
    user_id: str | None = None
    conversation_id: str | None = None
    environment: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None

    @property
    def has_usage(self) -> bool:
        return self.tokens_in is not None or self.tokens_out is not None


def convention_of(attributes: Mapping[str, Any]) -> Convention:
    if "openinference.span.kind" in attributes:
        return "openinference"
    if any(k.startswith("langfuse.") for k in attributes):
        return "langfuse"
    if any(k.startswith("traceloop.") for k in attributes) or "llm.request.type" in attributes:
        return "openllmetry"
    return "genai"


def read_span(span: Span) -> SpanFacts:
    """The facts of ``span`` by the convention its attributes name, GenAI filling the gaps."""
    convention = convention_of(span.attributes)
    facts = _genai(span, convention)
    if convention != "genai":
        _READERS[convention](span, facts)
    return facts


# --- value helpers -------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 and value == value and value != float("inf") else None
    if isinstance(value, str):
        try:
            return _float(float(value))
        except ValueError:
            return None
    return None


def parse_json_text(value: Any) -> Any:
    """A JSON-encoded attribute decoded (bounded nesting); the text itself when it is not JSON."""
    if not isinstance(value, str) or value[:1] not in ("{", "["):
        return value
    try:
        return from_json(value, allow_inf_nan=False)
    except ValueError:  # not JSON, or nested deeper than the parser allows
        return value


def _tags(value: Any) -> list[str]:
    value = parse_json_text(value)
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list):
        return [str(t) for t in value if t not in (None, "")]
    return []


def _first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def _prefixed(attrs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: parse_json_text(v) for k, v in attrs.items() if k.startswith(prefix)}


# --- OpenTelemetry GenAI (the base every reader starts from) ----------------------------------------

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


def _genai(span: Span, convention: Convention) -> SpanFacts:
    a = span.attributes
    op = _str(a.get("gen_ai.operation.name")) or span.name.split(" ", 1)[0]
    kind: SpanKind = _GENAI_KINDS.get(op, "span")
    if (
        kind == "span"
        and ("gen_ai.system" in a or "gen_ai.provider.name" in a)
        and "gen_ai.request.model" in a
    ):
        kind = "llm"
    status_code = _int(a.get("http.response.status_code"))
    error_type = _str(a.get("error.type"))
    if span.error and not error_type:
        error_type = next(
            (_str(ev["attributes"].get("exception.type")) for ev in span.events if ev["name"] == "exception"),
            None,
        )
    return SpanFacts(
        convention=convention,
        kind=kind,
        model=_str(_first(a, "gen_ai.response.model", "gen_ai.request.model")),
        tokens_in=_int(_first(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
        tokens_out=_int(_first(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
        cost_usd=_float(a.get("gen_ai.usage.cost")),
        input=_first(a, "gen_ai.input.messages", "gen_ai.prompt", "input.value"),
        output=_first(a, "gen_ai.output.messages", "gen_ai.completion", "output.value"),
        agent_name=_str(a.get("gen_ai.agent.name")),
        agent_version=_str(a.get("gen_ai.agent.version")),
        tool_name=_str(a.get("gen_ai.tool.name")),
        tool_call_id=_str(a.get("gen_ai.tool.call.id")),
        tool_args=parse_json_text(a.get("gen_ai.tool.call.arguments")),
        tool_result=a.get("gen_ai.tool.call.result"),
        error_type=error_type,
        failed=span.error or bool(error_type),
        status_code=status_code if status_code is not None and status_code <= 999 else None,
        session_id=_str(_first(a, "session.id", "gen_ai.conversation.id")),
        user_id=_str(_first(a, "user.id", "enduser.id")),
        conversation_id=_str(a.get("gen_ai.conversation.id")),
        environment=_str(
            _first(span.resource, "deployment.environment.name", "deployment.environment")
            or a.get("deployment.environment.name")
        ),
    )


# --- OpenInference ----------------------------------------------------------------------------------

_OI_KINDS: dict[str, SpanKind] = {
    "AGENT": "agent",
    "CHAIN": "chain",
    "LLM": "llm",
    "EMBEDDING": "embedding",
    "TOOL": "tool",
    "RETRIEVER": "retriever",
    "RERANKER": "retriever",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
}


def _openinference(span: Span, f: SpanFacts) -> None:
    a = span.attributes
    f.kind = _OI_KINDS.get(str(a.get("openinference.span.kind", "")).upper(), "span")
    f.model = _str(a.get("llm.model_name")) or f.model
    f.tokens_in = _int(a.get("llm.token_count.prompt")) if "llm.token_count.prompt" in a else f.tokens_in
    f.tokens_out = (
        _int(a.get("llm.token_count.completion")) if "llm.token_count.completion" in a else f.tokens_out
    )
    f.cost_usd = _float(a.get("llm.cost.total")) if "llm.cost.total" in a else f.cost_usd
    f.input = _first(a, "input.value") or f.input
    f.output = _first(a, "output.value") or f.output
    f.agent_name = _str(a.get("agent.name")) or f.agent_name
    f.tool_name = _str(a.get("tool.name")) or f.tool_name
    f.tool_call_id = _str(a.get("tool_call.id")) or f.tool_call_id
    if "tool.parameters" in a:
        f.tool_args = parse_json_text(a["tool.parameters"])
    if f.kind == "tool" and f.tool_args is None and "input.value" in a:
        f.tool_args = parse_json_text(a["input.value"])
    f.tags = _tags(a.get("tag.tags")) or f.tags
    meta = parse_json_text(a.get("metadata"))
    if isinstance(meta, dict):
        f.metadata = meta
    template = _str(a.get("llm.prompt_template.template"))
    version = _str(a.get("llm.prompt_template.version"))
    if version or template:
        f.prompt = f"{(template or '')[:60]}@{version}" if version else (template or "")[:80]


# --- OpenLLMetry (Traceloop) ------------------------------------------------------------------------

_TRACELOOP_KINDS: dict[str, SpanKind] = {
    "workflow": "agent",
    "agent": "agent",
    "task": "chain",
    "tool": "tool",
}
_TRACELOOP_PROPS = "traceloop.association.properties."


def _openllmetry(span: Span, f: SpanFacts) -> None:
    a = span.attributes
    kind = _str(a.get("traceloop.span.kind"))
    if kind:
        f.kind = _TRACELOOP_KINDS.get(kind, "span")
    elif "llm.request.type" in a:
        f.kind = "embedding" if a.get("llm.request.type") == "embedding" else "llm"
    name = _str(_first(a, "traceloop.entity.name", "traceloop.workflow.name"))
    if f.kind == "agent":
        f.agent_name = f.agent_name or name
    if f.kind == "tool":
        f.tool_name = f.tool_name or name
    entity_input = parse_json_text(a.get("traceloop.entity.input"))
    entity_output = parse_json_text(a.get("traceloop.entity.output"))
    if isinstance(entity_input, dict) and f.kind == "tool" and f.tool_args is None:
        f.tool_args = entity_input.get("inputs", entity_input)
    f.input = entity_input if entity_input is not None else f.input
    f.output = entity_output if entity_output is not None else f.output
    props = _prefixed(a, _TRACELOOP_PROPS)
    f.session_id = _str(props.pop("session_id", None)) or f.session_id
    f.user_id = _str(props.pop("user_id", None)) or f.user_id
    f.tags = _tags(props.pop("tags", None)) or f.tags
    f.metadata = {**props, **f.metadata}
    if f.kind in MODEL_KINDS and f.tokens_in is None:
        f.tokens_in = _int(a.get("llm.usage.prompt_tokens"))


# --- Langfuse ---------------------------------------------------------------------------------------

_LANGFUSE_KINDS: dict[str, SpanKind] = {
    "generation": "llm",
    "embedding": "embedding",
    "agent": "agent",
    "chain": "chain",
    "tool": "tool",
    "retriever": "retriever",
    "evaluator": "evaluator",
    "guardrail": "guardrail",
}


def _langfuse(span: Span, f: SpanFacts) -> None:
    a = span.attributes
    kind = _str(a.get("langfuse.observation.type"))
    if kind:
        f.kind = _LANGFUSE_KINDS.get(kind, "span")
    f.model = _str(a.get("langfuse.observation.model.name")) or f.model
    usage = parse_json_text(a.get("langfuse.observation.usage_details"))
    if isinstance(usage, dict):
        f.tokens_in = _int(_first(usage, "input", "prompt_tokens", "input_tokens"))
        f.tokens_out = _int(_first(usage, "output", "completion_tokens", "output_tokens"))
    cost = parse_json_text(a.get("langfuse.observation.cost_details"))
    if isinstance(cost, dict):
        total = _float(cost.get("total"))
        parts = [v for k, v in cost.items() if k != "total" and _float(v) is not None]
        f.cost_usd = total if total is not None else (sum(float(v) for v in parts) if parts else None)
    obs_in = parse_json_text(_first(a, "langfuse.observation.input", "langfuse.trace.input"))
    obs_out = parse_json_text(_first(a, "langfuse.observation.output", "langfuse.trace.output"))
    f.input = obs_in if obs_in is not None else f.input
    f.output = obs_out if obs_out is not None else f.output
    if f.kind == "tool" and f.tool_args is None:
        f.tool_args = obs_in
    if f.kind == "tool" and f.tool_result is None:
        f.tool_result = obs_out
    level = _str(a.get("langfuse.observation.level"))
    if level == "ERROR":
        f.failed = True
        exception = next(
            (_str(ev["attributes"].get("exception.type")) for ev in span.events if ev["name"] == "exception"),
            None,
        )
        f.error_type = f.error_type or exception or "ERROR"
    f.session_id = _str(_first(a, "langfuse.session.id", "session.id")) or f.session_id
    f.user_id = _str(_first(a, "langfuse.user.id", "user.id")) or f.user_id
    f.tags = _tags(a.get("langfuse.trace.tags")) or f.tags
    # The Langfuse SDK writes each metadata value JSON-encoded ("support" arrives as '"support"').
    f.metadata = {
        **_decoded(_prefixed(a, "langfuse.trace.metadata.")),
        **_decoded(_prefixed(a, "langfuse.observation.metadata.")),
        **f.metadata,
    }
    f.environment = _str(a.get("langfuse.environment")) or f.environment
    f.agent_name = f.agent_name or _str(a.get("langfuse.trace.name"))
    f.agent_version = _str(_first(a, "langfuse.release", "langfuse.version")) or f.agent_version
    name, version = (
        _str(a.get("langfuse.observation.prompt.name")),
        _str(a.get("langfuse.observation.prompt.version")),
    )
    if name:
        f.prompt = f"{name}@{version}" if version else name


def _decoded(values: dict[str, Any]) -> dict[str, Any]:
    """Values that are JSON text of a string, number, boolean or null, decoded."""
    out = {}
    for key, value in values.items():
        if isinstance(value, str) and value[:1] in ('"', "-", "t", "f", "n", *"0123456789"):
            with contextlib.suppress(ValueError):
                value = from_json(value, allow_inf_nan=False)
        out[key] = value
    return out


def status_message(span: Span) -> str:
    """The span's error text: its status message, Langfuse's status message or its exception event."""
    if span.status_message:
        return span.status_message
    message = span.attributes.get("langfuse.observation.status_message")
    if message:
        return str(message)
    for ev in span.events:
        if ev["name"] == "exception":
            return str(ev["attributes"].get("exception.message") or "")
    return ""


_READERS: dict[Convention, Callable[[Span, SpanFacts], None]] = {
    "openinference": _openinference,
    "openllmetry": _openllmetry,
    "langfuse": _langfuse,
}
