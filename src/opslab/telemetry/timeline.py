"""Replay: a run's steps, tool calls and guardrail events merged into one time-ordered list."""

from __future__ import annotations

from collections.abc import Sequence

from opslab.telemetry.detail import call_detail, guardrail_detail, step_detail
from opslab.telemetry.schema import AgentRunIn
from opslab.telemetry.signals import LogRecord
from opslab.telemetry.views import Timeline, TimelineItem

_KIND_ORDER = {"step": 0, "tool_call": 1, "guardrail": 2, "log": 3}


def build_timeline(run: AgentRunIn, logs: Sequence[LogRecord] = ()) -> Timeline:
    """Order by start time; items without one inherit their step's. Ties keep kind order, then payload order.

    ``logs`` are the OTLP log records of the run's trace: each is an item of kind ``log`` (linked to its
    span's step when it names one).

    A tool call or guardrail event with no time of its own sits at its step's start, right after the
    step; items that know no time at all keep their payload position after everything that does.
    """
    step_start = {s.step_id: s.started_at for s in run.steps}
    call_step = {c.call_id: c.step_id for c in run.tool_calls}
    keyed: list[tuple[tuple[int, float, int, int], TimelineItem]] = []

    def add(item: TimelineItem, seq: int) -> None:
        at = item.started_at
        keyed.append(((0 if at else 1, at.timestamp() if at else 0.0, _KIND_ORDER[item.kind], seq), item))

    for seq, s in enumerate(run.steps):
        summary = s.output_summary or s.input_summary or ""
        add(
            TimelineItem(
                kind="step",
                id=s.step_id,
                name=s.name,
                started_at=s.started_at,
                ended_at=s.ended_at,
                status=s.status,
                summary=summary,
                step_id=s.step_id,
                detail=step_detail(s),
            ),
            seq,
        )
    for seq, c in enumerate(run.tool_calls):
        at = c.started_at or (step_start.get(c.step_id) if c.step_id else None)
        summary = c.error_message or c.result_summary or ""
        if c.status_code is not None:
            summary = f"[{c.status_code}] {summary}".strip()
        add(
            TimelineItem(
                kind="tool_call",
                id=c.call_id,
                name=c.tool_name,
                started_at=at,
                ended_at=c.ended_at,
                status=c.status,
                summary=summary,
                step_id=c.step_id,
                detail=call_detail(c),
            ),
            seq,
        )
    for seq, g in enumerate(run.guardrail_events):
        step_id = g.step_id or (call_step.get(g.call_id) if g.call_id else None)
        at = g.created_at or (step_start.get(step_id) if step_id else None)
        add(
            TimelineItem(
                kind="guardrail",
                id=g.event_id,
                name=g.type,
                started_at=at,
                ended_at=g.created_at,
                status="triggered",
                summary=g.message,
                step_id=step_id,
                detail=guardrail_detail(g),
            ),
            seq,
        )
    step_ids = set(step_start)
    for seq, rec in enumerate(logs):
        add(
            TimelineItem(
                kind="log",
                id=f"log-{seq + 1}",
                name=rec.severity,
                started_at=rec.at,
                ended_at=rec.at,
                status=rec.severity.lower(),
                summary=rec.body,
                step_id=rec.span_id if rec.span_id in step_ids else None,
            ),
            seq,
        )
    keyed.sort(key=lambda pair: pair[0])
    return Timeline(run_id=run.run_id, items=[item for _, item in keyed])
