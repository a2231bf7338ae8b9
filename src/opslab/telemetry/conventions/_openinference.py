"""OpenInference (Arize Phoenix): ``openinference.span.kind`` and the ``llm.*``/``tool.*`` attributes."""

from __future__ import annotations

from opslab.telemetry.conventions._facts import SpanFacts, SpanKind
from opslab.telemetry.conventions._values import as_float, as_int, as_str, as_tags, first, parse_json_text
from opslab.telemetry.otlp import Span

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


def read_openinference(span: Span, f: SpanFacts) -> None:
    a = span.attributes
    f.kind = _OI_KINDS.get(str(a.get("openinference.span.kind", "")).upper(), "span")
    f.model = as_str(a.get("llm.model_name")) or f.model
    f.tokens_in = as_int(a.get("llm.token_count.prompt")) if "llm.token_count.prompt" in a else f.tokens_in
    f.tokens_out = (
        as_int(a.get("llm.token_count.completion")) if "llm.token_count.completion" in a else f.tokens_out
    )
    f.cost_usd = as_float(a.get("llm.cost.total")) if "llm.cost.total" in a else f.cost_usd
    f.input = first(a, "input.value") or f.input
    f.output = first(a, "output.value") or f.output
    f.agent_name = as_str(a.get("agent.name")) or f.agent_name
    f.tool_name = as_str(a.get("tool.name")) or f.tool_name
    f.tool_call_id = as_str(a.get("tool_call.id")) or f.tool_call_id
    if "tool.parameters" in a:
        f.tool_args = parse_json_text(a["tool.parameters"])
    if f.kind == "tool" and f.tool_args is None and "input.value" in a:
        f.tool_args = parse_json_text(a["input.value"])
    f.tags = as_tags(a.get("tag.tags")) or f.tags
    meta = parse_json_text(a.get("metadata"))
    if isinstance(meta, dict):
        f.metadata = meta
    template = as_str(a.get("llm.prompt_template.template"))
    version = as_str(a.get("llm.prompt_template.version"))
    if version or template:
        f.prompt = f"{(template or '')[:60]}@{version}" if version else (template or "")[:80]
