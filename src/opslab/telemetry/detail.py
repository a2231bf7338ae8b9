"""Everything stored for one node of a run — a step, a tool call, a guardrail event or a span — in one
shape whichever convention recorded it (``NodeDetail``): what the timeline, the tree, the node view, the
run page and export all read.

An LLM call's messages (``telemetry.messages``), a tool call's arguments and result, a span's attributes
and events (exceptions with their stack) and its errors; long values are folded to ``FOLD_CHARS`` with a
note of what was left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_json

from opslab.telemetry.conventions import SpanFacts, parse_json_text, status_message
from opslab.telemetry.messages import span_messages
from opslab.telemetry.otlp import Span
from opslab.telemetry.schema import GuardrailEventIn, Message, StepIn, ToolCallIn

FOLD_CHARS = 20_000  # of one attribute value or event attribute
MAX_ATTRIBUTES = 500


class SpanEvent(BaseModel):
    name: str
    at: datetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class NodeDetail(BaseModel):
    """One node, all that was stored for it. Fields a node cannot have are left out (None or empty)."""

    kind: str | None = Field(None, description="llm, agent, tool, retriever, step, tool_call, guardrail…")
    input: str | None = Field(None, description="What the node was given, as text.")
    output: str | None = Field(None, description="What it produced, as text.")
    input_messages: list[Message] = Field(default_factory=list, description="An LLM call's prompt.")
    output_messages: list[Message] = Field(default_factory=list, description="An LLM call's completion.")
    arguments: Any = Field(None, description="A tool call's arguments, as recorded.")
    result: str | None = Field(None, description="A tool call's result.")
    error: str | None = None
    error_class: str | None = None
    status_code: int | None = None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, description="A span's attributes, as sent.")
    events: list[SpanEvent] = Field(default_factory=list, description="A span's events (exceptions…).")


def step_detail(s: StepIn) -> NodeDetail:
    return NodeDetail(
        kind=s.kind or "step",
        input=s.input_summary,
        output=s.output_summary,
        input_messages=s.input_messages,
        output_messages=s.output_messages,
        model=s.model,
        tokens_in=s.tokens_prompt,
        tokens_out=s.tokens_completion,
        error=s.output_summary if s.status in ("failure", "timeout") else None,
    )


def call_detail(c: ToolCallIn) -> NodeDetail:
    return NodeDetail(
        kind="tool_call",
        arguments=c.args_json,
        result=c.result_summary,
        error=c.error_message,
        error_class=c.error_class,
        status_code=c.status_code,
    )


def guardrail_detail(g: GuardrailEventIn) -> NodeDetail:
    return NodeDetail(kind="guardrail", output=g.message or None)


def span_detail(
    span: Span, facts: SpanFacts, *, tokens: tuple[int | None, int | None], cost: float | None
) -> NodeDetail:
    """A span as stored: its reading (``facts``), messages, attributes and events."""
    asked, answered = span_messages(span)
    return NodeDetail(
        kind=facts.kind,
        input=_text(facts.input) if not asked else None,
        output=_text(facts.output) if not answered else None,
        input_messages=asked,
        output_messages=answered,
        arguments=facts.tool_args if facts.kind == "tool" else None,
        result=_text(facts.tool_result) if facts.kind == "tool" else None,
        error=(status_message(span) or facts.error_type) if facts.failed else None,
        error_class=facts.error_type,
        status_code=facts.status_code,
        model=facts.model,
        tokens_in=tokens[0],
        tokens_out=tokens[1],
        cost_usd=cost,
        attributes=fold(dict(list(span.attributes.items())[:MAX_ATTRIBUTES])),
        events=[
            SpanEvent(name=ev["name"], at=_at(ev["time_ns"]), attributes=fold(ev.get("attributes") or {}))
            for ev in span.events[:MAX_ATTRIBUTES]
        ],
    )


def fold(values: dict[str, Any]) -> dict[str, Any]:
    """Each value as sent, a text longer than ``FOLD_CHARS`` cut with a note of how much more it had."""
    return {key: _folded(value) for key, value in values.items()}


def _folded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > FOLD_CHARS:
        return f"{value[:FOLD_CHARS]}… ({len(value) - FOLD_CHARS} more characters)"
    if isinstance(value, list):
        return [_folded(v) for v in value[:MAX_ATTRIBUTES]]
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    value = parse_json_text(value)
    text = value if isinstance(value, str) else to_json(value, fallback=str).decode()
    return (
        text
        if len(text) <= FOLD_CHARS
        else f"{text[:FOLD_CHARS]}… ({len(text) - FOLD_CHARS} more characters)"
    )


def _at(ns: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(ns / 1e9, UTC) if ns else None
    except (OverflowError, ValueError, OSError):
        return None
