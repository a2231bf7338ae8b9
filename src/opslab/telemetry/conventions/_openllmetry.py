"""OpenLLMetry (Traceloop): ``traceloop.span.kind``, ``traceloop.entity.*`` and association properties."""

from __future__ import annotations

from opslab.telemetry.conventions._facts import MODEL_KINDS, SpanFacts, SpanKind
from opslab.telemetry.conventions._values import as_int, as_str, as_tags, first, parse_json_text, prefixed
from opslab.telemetry.otlp import Span

_TRACELOOP_KINDS: dict[str, SpanKind] = {
    "workflow": "agent",
    "agent": "agent",
    "task": "chain",
    "tool": "tool",
}
_TRACELOOP_PROPS = "traceloop.association.properties."


def read_openllmetry(span: Span, f: SpanFacts) -> None:
    a = span.attributes
    kind = as_str(a.get("traceloop.span.kind"))
    if kind:
        f.kind = _TRACELOOP_KINDS.get(kind, "span")
    elif "llm.request.type" in a:
        f.kind = "embedding" if a.get("llm.request.type") == "embedding" else "llm"
    name = as_str(first(a, "traceloop.entity.name", "traceloop.workflow.name"))
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
    props = prefixed(a, _TRACELOOP_PROPS)
    f.session_id = as_str(props.pop("session_id", None)) or f.session_id
    f.user_id = as_str(props.pop("user_id", None)) or f.user_id
    f.tags = as_tags(props.pop("tags", None)) or f.tags
    f.metadata = {**props, **f.metadata}
    if f.kind in MODEL_KINDS and f.tokens_in is None:
        f.tokens_in = as_int(a.get("llm.usage.prompt_tokens"))
