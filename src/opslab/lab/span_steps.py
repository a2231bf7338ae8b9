"""A trial's OpenTelemetry spans as parts of its agent run: steps, tool calls, guardrail events, tokens.

The mapping is the telemetry package's own (``map_trace``, the GenAI conventions): the trial's spans,
of whatever traces, are placed under one stand-in ``invoke_agent`` span — the harness — so that every
span becomes a step, a tool call or a guardrail event of the trial's run exactly as it would of a
production run posted over OTLP. A span that cannot be part of a valid run (a time before 1970 or in
the future, text the service cannot store) is left out and counted, never failing the trial's report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from opslab.errors import InvalidInput
from opslab.lab.events import SPANS_FILE, read_trial_events
from opslab.telemetry import (
    AgentRunIn,
    GuardrailEventIn,
    Span,
    StepIn,
    ToolCallIn,
    check_semantics,
    map_trace,
)

MAX_SPANS = 1000  # per trial, like the harness events: a run stays well under the service's body limit
INT_MAX = 2**31 - 1
_ROOT = "opslab-lab-harness"
_TOKEN_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
# pydantic's ValidationError is a ValueError; the rest: values of types no span should hold.
_MAPPING_ERRORS = (InvalidInput, ValueError, TypeError, OverflowError, KeyError, AttributeError)


@dataclass(frozen=True, slots=True)
class SpanParts:
    steps: list[StepIn]
    tool_calls: list[ToolCallIn]
    guardrail_events: list[GuardrailEventIn]
    tokens_prompt: int | None
    tokens_completion: int | None
    model: str | None  # the first gen_ai.request.model
    trace_ids: list[str]
    spans: int  # spans in the run
    dropped: int  # spans left out: over MAX_SPANS, or unmappable


def read_spans(trial_dir: str) -> list[Span]:
    """The spans of a trial's ``out/otel_spans.jsonl``; lines that are not spans (the collector writes
    none, but the folder is the harness's) are skipped."""
    found = read_trial_events(trial_dir, f"out/{SPANS_FILE}").events
    return [Span.from_json(data) for data in found if _is_span(data)]


def span_parts(spans: Sequence[Span], *, latest: datetime, taken_call_ids: Iterable[str] = ()) -> SpanParts:
    """The parts of the trial's run its spans make. Times after ``latest`` (the service refuses times
    ahead of its clock) are dropped from their span; ``taken_call_ids`` are the run's other tool calls'."""
    unique = list({s.span_id: s for s in spans[:MAX_SPANS]}.values())  # a re-sent span replaces the first
    limit_ns = int(latest.timestamp() * 1e9)
    clean = [_clean(s, limit_ns) for s in unique]
    run = _map(clean)
    if run is None:  # some span breaks the mapping: keep those that map on their own
        clean = [s for s in clean if _map([s]) is not None]
        run = _map(clean)
    over = max(0, len(spans) - MAX_SPANS)
    if run is None:
        return SpanParts([], [], [], None, None, None, [], spans=0, dropped=over + len(unique))
    calls, guards = _rename_taken(run.tool_calls, run.guardrail_events, set(taken_call_ids))
    kept = {s.span_id for s in clean}
    originals = [s for s in unique if s.span_id in kept]
    return SpanParts(
        steps=run.steps,
        tool_calls=calls,
        guardrail_events=guards,
        tokens_prompt=_tokens(originals, _TOKEN_KEYS[0]),
        tokens_completion=_tokens(originals, _TOKEN_KEYS[1]),
        model=_model(originals),
        trace_ids=sorted({s.trace_id for s in originals}),
        spans=len(originals),
        dropped=over + len(unique) - len(originals),
    )


_SPAN_TYPES: dict[str, type | tuple[type, ...]] = {
    "trace_id": str,
    "span_id": str,
    "parent_span_id": (str, type(None)),
    "name": str,
    "start_ns": int,
    "end_ns": int,
    "attributes": dict,
    "resource": dict,
    "error": bool,
    "status_message": str,
    "events": list,
}


def _is_span(data: dict[str, object]) -> bool:
    return all(isinstance(data.get(k), t) for k, t in _SPAN_TYPES.items()) and all(
        isinstance(ev, dict) and isinstance(ev.get("attributes"), dict) and ev.get("name") is not None
        for ev in data["events"]  # type: ignore[attr-defined]
    )


def _clean(s: Span, limit_ns: int) -> Span:
    """A copy the mapping can take: no times out of range or backwards, no token counts (summed here,
    where a count no column holds is dropped rather than failing the run)."""
    start = s.start_ns if isinstance(s.start_ns, int) and 0 < s.start_ns <= limit_ns else 0
    end = s.end_ns if isinstance(s.end_ns, int) and start and start <= s.end_ns <= limit_ns else 0
    attributes = {k: v for k, v in s.attributes.items() if k not in _TOKEN_KEYS}
    return dataclasses.replace(s, start_ns=start, end_ns=end, attributes=attributes)


def _map(spans: list[Span]) -> AgentRunIn | None:
    """The spans under the stand-in harness span, as one run (None when they cannot make a valid one)."""
    ids = {s.span_id for s in spans}
    placed = [s if s.parent_span_id in ids else dataclasses.replace(s, parent_span_id=_ROOT) for s in spans]
    root = Span(
        trace_id=spans[0].trace_id if spans else "0",
        span_id=_ROOT,
        parent_span_id=None,
        name="invoke_agent harness",
        start_ns=0,
        end_ns=0,
        attributes={"gen_ai.operation.name": "invoke_agent"},
        resource={},
        error=False,
        status_message="",
    )
    try:
        run = next(
            r for r in map_trace([root, *placed]).runs if r.attributes["otel"]["root_span_id"] == _ROOT
        )
        check_semantics(run)  # what the service checks beyond each field
    except _MAPPING_ERRORS:
        return None
    return run


def _rename_taken(
    calls: list[ToolCallIn], guards: list[GuardrailEventIn], taken: set[str]
) -> tuple[list[ToolCallIn], list[GuardrailEventIn]]:
    """Tool call ids that the harness events' calls already use, made unique (and followed by guards)."""
    renamed: dict[str, str] = {}
    for c in calls:
        if c.call_id in taken:
            new = c.call_id + "-otel"
            while new in taken:
                new += "-otel"
            renamed[c.call_id] = new
            c.call_id = new
        taken.add(c.call_id)
    for g in guards:
        if g.call_id in renamed:
            g.call_id = renamed[g.call_id]
    return calls, guards


def _tokens(spans: list[Span], key: str) -> int | None:
    total = 0
    for s in spans:
        value = s.attributes.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            total += value
    return total if 0 < total <= INT_MAX else None


def _model(spans: list[Span]) -> str | None:
    for s in sorted(spans, key=lambda s: s.start_ns if isinstance(s.start_ns, int) else 0):
        for key in ("gen_ai.request.model", "gen_ai.response.model"):
            value = s.attributes.get(key)
            if isinstance(value, str) and value and "\x00" not in value:
                return value
    return None
