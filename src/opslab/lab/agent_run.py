"""A lab trial as an agent run (``opslab.telemetry.AgentRunIn``), so a failed trial gets an RCA like any
production run.

The mapping: ``run_id`` = ``<lab run id>.<trial id>``; ``agent_name`` = the experiment, ``agent_version``
= the variant, ``model`` = the variant's ``model`` binding, ``environment`` = ``lab``; the status from the
outcome (success → success, failure and error → failure, timeout → timeout, skipped → cancelled); the
trial's error as ``error_type`` / ``error_message``; one step for the harness process (exit code, duration,
the tail of its stderr when it failed), then one step per harness event, and a tool call for each event
that names a tool; then the harness's OpenTelemetry spans (integration level ``otel``) as steps, tool
calls and guardrail events, mapped as the service maps any OTLP trace (``span_steps``); ``attributes``
label the run (``lab.experiment``, ``lab.run_id``, ``lab.variant``, ``lab.trial_id``, ``lab.task_id``,
``lab.replication``) and carry its metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from opslab.errors import InvalidInput
from opslab.lab.events import HarnessEvent
from opslab.lab.records import Outcome, TrialRecord
from opslab.lab.span_steps import span_parts
from opslab.telemetry import (
    AgentRunIn,
    CostIn,
    GuardrailEventIn,
    RunStatus,
    StepIn,
    ToolCallIn,
    unstorable,
)

if TYPE_CHECKING:
    from opslab.telemetry import Span

HarnessStatus = Literal["success", "failure", "timeout"]

STATUS: dict[Outcome, RunStatus] = {
    "success": "success",
    "failure": "failure",
    "error": "failure",
    "timeout": "timeout",
    "skipped": "cancelled",
}
MAX_EVENTS = 1000  # steps per trial: a run stays well under the service's body limit
SUMMARY_CHARS = 2000
NAME_CHARS = 200
INT_MAX = 2**31 - 1
# The runner's own error messages (harness.run_harness), by how they start.
_RUNNER_ERRORS: tuple[tuple[str, str, HarnessStatus], ...] = (
    ("harness: ", "HarnessStartError", "failure"),
    ("timeout: ", "HarnessTimeout", "timeout"),
    ("harness exited with code", "HarnessCrash", "failure"),
    ("harness wrote no trial_output.json", "HarnessOutputError", "failure"),
    ("trial_output.json ", "HarnessOutputError", "failure"),
)


def agent_run_id(lab_run_id: str, trial_id: str) -> str:
    return f"{lab_run_id}.{trial_id}"


def trial_to_agent_run(
    record: TrialRecord,
    *,
    lab_run_id: str,
    experiment_id: str,
    events: Sequence[Mapping[str, object]] = (),
    stderr_tail: str = "",
    harness_command: Sequence[str] = (),
    bindings: Mapping[str, object] | None = None,
    finished_at: datetime | None = None,
    spans: Sequence[Span] = (),
) -> AgentRunIn:
    """The agent run of one finished trial. ``finished_at`` stands in for the end time of records written
    before trials recorded their times (the file's modification time, say); ``spans`` are the ones the
    harness exported (``span_steps.read_spans`` of its ``otel_spans.jsonl``)."""
    ended = record.ended_at or finished_at
    if ended is None:
        raise InvalidInput.for_field("ended_at", "the trial record has no time: pass finished_at")
    started = record.started_at or ended - timedelta(milliseconds=record.duration_ms)
    error_type, message, harness_status = _error(record)
    harness = StepIn(
        step_id="harness",
        name=_clip("harness: " + " ".join(harness_command), NAME_CHARS) if harness_command else "harness",
        status=harness_status,
        started_at=started,
        ended_at=ended,
        input_summary=_clip(
            f"variant {record.variant_id}, task {record.task_id}, replication {record.replication}, "
            f"seed {record.seed}, attempt {record.attempt}"
        ),
        output_summary=_failure_summary(message, stderr_tail)
        if harness_status != "success"
        else f"exit code {record.exit_code} after {record.duration_ms:.0f} ms; outcome {record.outcome}",
        retries=record.attempt - 1,
        latency_ms=record.duration_ms,
    )
    steps, calls = [harness], []
    latest = ended + timedelta(minutes=5)  # the service refuses times ahead of its clock
    for i, raw in enumerate(events[:MAX_EVENTS], start=1):
        ev = HarnessEvent.of(raw)
        at = ev.started_at if ev.started_at and ev.started_at <= latest else None
        end = ev.ended_at if ev.ended_at and at and at <= ev.ended_at <= latest else None
        step_id = f"event-{i}"
        label = " ".join(x for x in (ev.kind, ev.name or ev.tool) if x)
        steps.append(
            StepIn(
                step_id=step_id,
                name=_clip(label, NAME_CHARS),
                status=ev.status,
                started_at=at,
                ended_at=end,
                input_summary=_clip_or_none(ev.input),
                output_summary=_clip_or_none(ev.error or ev.output),
                latency_ms=ev.latency_ms,
            )
        )
        if ev.tool:
            calls.append(_tool_call(ev, f"call-{i}", step_id, at, end))
    guards: list[GuardrailEventIn] = []
    metrics = {k: v for k, v in record.metrics.items() if v is None or isinstance(v, bool) or _finite(v)}
    model = (bindings or {}).get("model")
    cost, otel, trace_id = _cost(metrics), None, None
    if spans:
        parts = span_parts(spans, latest=latest, taken_call_ids=[c.call_id for c in calls])
        steps += parts.steps
        calls += parts.tool_calls
        guards = parts.guardrail_events
        model = model or parts.model
        if cost.tokens_prompt is None and cost.tokens_completion is None:  # the metrics say more
            cost.tokens_prompt, cost.tokens_completion = parts.tokens_prompt, parts.tokens_completion
        trace_id = parts.trace_ids[0] if len(parts.trace_ids) == 1 else None
        otel = {"spans": parts.spans, "traces": len(parts.trace_ids), "dropped": parts.dropped}
    attributes: dict[str, object] = {
        "lab.experiment": experiment_id,
        "lab.run_id": lab_run_id,
        "lab.variant": record.variant_id,
        "lab.trial_id": record.trial_id,
        "lab.task_id": _clip(record.task_id, NAME_CHARS),
        "lab.replication": record.replication,
        "lab.outcome": record.outcome,
        "lab.seed": record.seed,
        "lab.attempt": record.attempt,
        "lab.exit_code": record.exit_code,
        "lab.duration_ms": record.duration_ms,
        "lab.metrics": metrics,
        "lab.event_counts": record.event_counts,
    }
    if len(events) > MAX_EVENTS:
        attributes["lab.events_dropped"] = len(events) - MAX_EVENTS
    if otel is not None:
        attributes["lab.otel"] = otel
    return AgentRunIn(
        run_id=agent_run_id(lab_run_id, record.trial_id),
        agent_name=experiment_id,
        agent_version=record.variant_id,
        model=_clip(model, NAME_CHARS) if isinstance(model, str) and model else None,
        environment="lab",
        started_at=started,
        ended_at=ended,
        status=STATUS[record.outcome],
        error_type=error_type,
        error_message=_clip_or_none(
            _with_last_line(message, stderr_tail if harness_status != "success" else "")
        ),
        trace_id=trace_id,
        correlation_ids=[lab_run_id],
        steps=steps,
        tool_calls=calls,
        guardrail_events=guards,
        cost=cost,
        attributes=attributes,
    )


def _error(record: TrialRecord) -> tuple[str | None, str | None, HarnessStatus]:
    """The trial's error type and message, and the harness process's status."""
    err = record.error
    by_outcome = {"failure": "TrialFailure", "error": "HarnessError", "timeout": "Timeout"}
    if isinstance(err, str):
        for prefix, kind, status in _RUNNER_ERRORS:
            if err.startswith(prefix):
                return kind, err, status
        return by_outcome.get(record.outcome), err, "success"
    if isinstance(err, dict):
        kinds = [err.get(k) for k in ("type", "error_type", "code", "class")]
        label = next((k for k in kinds if isinstance(k, str) and k), None)
        message = err.get("message") or err.get("detail")
        text = message if isinstance(message, str) else str(err)
        return _clip(label or by_outcome.get(record.outcome, "Error"), NAME_CHARS), text, "success"
    return None, None, "success"


def _with_last_line(message: str | None, stderr_tail: str) -> str | None:
    """``harness exited with code 1: KeyError: 'customer_id'`` — the line of stderr that usually says why."""
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    return f"{message}: {lines[-1]}" if message and lines else message


def _failure_summary(message: str | None, stderr_tail: str) -> str:
    """The runner's reason, then as much of the end of stderr as fits (where a traceback says why)."""
    head = _clip(message or "harness failed", 400)
    if not stderr_tail:
        return head
    room = SUMMARY_CHARS - len(head) - 20
    tail = stderr_tail.replace("\x00", "")
    return f"{head}\nstderr (tail):\n{tail if len(tail) <= room else '…' + tail[-room:]}"


def _tool_call(
    ev: HarnessEvent, call_id: str, step_id: str, at: datetime | None, end: datetime | None
) -> ToolCallIn:
    fields = {
        "call_id": call_id,
        "step_id": step_id,
        "tool_name": _clip(ev.tool or "", NAME_CHARS) or "tool",
        "status": ev.status if ev.status in ("failure", "timeout") else "success",
        "result_summary": _clip_or_none(ev.output),
        "error_class": _clip_or_none(ev.error_class),
        "error_message": _clip_or_none(ev.error),
        "status_code": ev.status_code if ev.status_code is not None and 0 <= ev.status_code <= 999 else None,
        "latency_ms": ev.latency_ms,
        "started_at": at,
        "ended_at": end,
    }
    try:
        call = ToolCallIn.model_validate({**fields, "args_json": ev.args})
    except ValidationError:
        return ToolCallIn.model_validate(fields)
    if call.args_json is not None and unstorable(call.args_json):  # NaN, NUL: left out
        call.args_json = None
    return call


def _cost(metrics: Mapping[str, object]) -> CostIn:
    def pick(*names: str) -> float | None:
        for name in names:
            value = metrics.get(name)
            if isinstance(value, int | float) and _finite(value) and value >= 0:
                return float(value)
        return None

    def count(*names: str) -> int | None:
        value = pick(*names)
        return int(value) if value is not None and value.is_integer() and value <= INT_MAX else None

    return CostIn(
        tokens_prompt=count("tokens_prompt", "prompt_tokens", "input_tokens"),
        tokens_completion=count("tokens_completion", "completion_tokens", "output_tokens"),
        total_cost_usd=pick("total_cost_usd", "cost_usd", "cost"),
    )


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _clip(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = text.replace("\x00", "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_or_none(text: str | None) -> str | None:
    return _clip(text) if text else None
