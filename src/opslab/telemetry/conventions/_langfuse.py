"""Langfuse (SDK v3+): ``langfuse.observation.*`` and ``langfuse.trace.*``."""

from __future__ import annotations

import contextlib
from typing import Any

from pydantic_core import from_json

from opslab.telemetry.conventions._facts import SpanFacts, SpanKind
from opslab.telemetry.conventions._values import (
    as_float,
    as_int,
    as_str,
    as_tags,
    first,
    parse_json_text,
    prefixed,
)
from opslab.telemetry.otlp import Span

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


def read_langfuse(span: Span, f: SpanFacts) -> None:
    a = span.attributes
    kind = as_str(a.get("langfuse.observation.type"))
    if kind:
        f.kind = _LANGFUSE_KINDS.get(kind, "span")
    f.model = as_str(a.get("langfuse.observation.model.name")) or f.model
    usage = parse_json_text(a.get("langfuse.observation.usage_details"))
    if isinstance(usage, dict):
        f.tokens_in = as_int(first(usage, "input", "prompt_tokens", "input_tokens"))
        f.tokens_out = as_int(first(usage, "output", "completion_tokens", "output_tokens"))
    cost = parse_json_text(a.get("langfuse.observation.cost_details"))
    if isinstance(cost, dict):
        total = as_float(cost.get("total"))
        parts = [v for k, v in cost.items() if k != "total" and as_float(v) is not None]
        f.cost_usd = total if total is not None else (sum(float(v) for v in parts) if parts else None)
    obs_in = parse_json_text(first(a, "langfuse.observation.input", "langfuse.trace.input"))
    obs_out = parse_json_text(first(a, "langfuse.observation.output", "langfuse.trace.output"))
    f.input = obs_in if obs_in is not None else f.input
    f.output = obs_out if obs_out is not None else f.output
    if f.kind == "tool" and f.tool_args is None:
        f.tool_args = obs_in
    if f.kind == "tool" and f.tool_result is None:
        f.tool_result = obs_out
    level = as_str(a.get("langfuse.observation.level"))
    if level == "ERROR":
        f.failed = True
        exception = next(
            (
                as_str(ev["attributes"].get("exception.type"))
                for ev in span.events
                if ev["name"] == "exception"
            ),
            None,
        )
        f.error_type = f.error_type or exception or "ERROR"
    f.session_id = as_str(first(a, "langfuse.session.id", "session.id")) or f.session_id
    f.user_id = as_str(first(a, "langfuse.user.id", "user.id")) or f.user_id
    f.tags = as_tags(a.get("langfuse.trace.tags")) or f.tags
    # The Langfuse SDK writes each metadata value JSON-encoded ("support" arrives as '"support"').
    f.metadata = {
        **_decoded(prefixed(a, "langfuse.trace.metadata.")),
        **_decoded(prefixed(a, "langfuse.observation.metadata.")),
        **f.metadata,
    }
    f.environment = as_str(a.get("langfuse.environment")) or f.environment
    f.agent_name = f.agent_name or as_str(a.get("langfuse.trace.name"))
    f.agent_version = as_str(first(a, "langfuse.release", "langfuse.version")) or f.agent_version
    name, version = (
        as_str(a.get("langfuse.observation.prompt.name")),
        as_str(a.get("langfuse.observation.prompt.version")),
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
