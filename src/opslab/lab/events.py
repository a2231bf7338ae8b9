"""The harness's event stream (``harness_events.jsonl``): read, counted, and interpreted.

The events are the harness's own, one JSON object a line, in no fixed shape. The runner counts them by
``type``; ``HarnessEvent.of`` reads the fields most harnesses write (a name, a status, timestamps, a tool
name, inputs and outputs) under their common spellings, so that a trial can become an agent run.

A harness at integration level ``otel`` sends OpenTelemetry spans instead (or as well); the collector
keeps them in ``out/otel_spans.jsonl`` and ``span_events`` reads each as one event of the same shape, its
``type`` from the GenAI operation (``execute_tool`` → ``tool_call``, ``chat`` → ``llm_call``, …), so
that ``event_counts`` and the event tables count them. Nothing here imports the telemetry package: the
runner reads events for every trial.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from opslab.lab.untrusted import MIB, read_beneath

SPANS_FILE = "otel_spans.jsonl"  # in the trial's out/: one OTLP span a line (telemetry.Span's JSON)
EVENTS_FILES = ("out/harness_events.jsonl", "workspace/harness_events.jsonl")  # below the trial's folder
EVENTS_LIMIT_BYTES = 64 * MIB  # the default of runtime.limits.events_mb

EventStatus = Literal["success", "failure", "running", "timeout", "skipped"]
_STATUS: dict[str, EventStatus] = {
    **dict.fromkeys(("success", "ok", "passed", "pass", "completed", "complete", "done"), "success"),
    **dict.fromkeys(("failure", "failed", "fail", "error", "errored", "exception", "crash"), "failure"),
    **dict.fromkeys(("timeout", "timed_out", "timedout", "deadline_exceeded"), "timeout"),
    **dict.fromkeys(("skipped", "skip", "cancelled", "canceled"), "skipped"),
    **dict.fromkeys(("running", "started", "in_progress", "pending"), "running"),
}
_FAILING_TYPES = frozenset({"error", "exception", "failure", "crash"})
_START_KEYS = ("started_at", "start_time", "start", "ts", "timestamp", "time", "at")
_END_KEYS = ("ended_at", "end_time", "end", "finished_at")
_TOOL_KEYS = ("tool_name", "tool")
_INPUT_KEYS = ("input", "args", "arguments", "prompt", "query")
_OUTPUT_KEYS = ("output", "result", "response", "message")
_ERROR_KEYS = ("error", "error_message", "exception")
_ERROR_CLASS_KEYS = ("error_type", "error_class", "exception_type")


def read_events(*paths: str) -> list[dict[str, object]]:
    """The JSON objects, a line each, of the first of ``paths`` that exists: for the runner's own files
    (its tables). A file a trial wrote is read with ``read_trial_events``."""
    for p in paths:
        try:
            with open(p, "rb") as f:
                return parse_lines(f.read())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
    return []


def parse_lines(data: bytes) -> list[dict[str, object]]:
    """Lines that are JSON objects; any other line is skipped."""
    out = []
    for line in data.decode(errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


@dataclass(frozen=True, slots=True)
class TrialEvents:
    """A trial's events and, when the runner refused or cut what it found, one line saying so."""

    events: list[dict[str, object]]
    note: str | None = None


def read_trial_events(trial_dir: str, *relative: str, limit: int = EVENTS_LIMIT_BYTES) -> TrialEvents:
    """The events of the first of the trial's files ``relative`` (below ``trial_dir``) that is there, read
    as untrusted data (``untrusted.read_beneath``: no link followed, regular files only, at most ``limit``
    bytes; a line cut by the cap is dropped)."""
    for name in relative:
        taken = read_beneath(trial_dir, name, limit=limit)
        if taken.refused is not None:
            return TrialEvents([], taken.refused)
        if taken.data is None:
            continue
        if not taken.cut:
            return TrialEvents(parse_lines(taken.data))
        kept = taken.data[: taken.data.rfind(b"\n") + 1]
        note = f"{name}: {taken.size} bytes; only the first {limit} read (runtime.limits.events_mb)"
        return TrialEvents(parse_lines(kept), note)
    return TrialEvents([])


def count_events(events: list[dict[str, object]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ev in events:
        kind = str(ev.get("type") or ev.get("event") or "event")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


@dataclass(frozen=True, slots=True)
class HarnessEvent:
    """One event as far as it can be read: every field but ``kind`` and ``status`` may be missing."""

    kind: str
    name: str | None
    status: EventStatus
    started_at: datetime | None
    ended_at: datetime | None
    tool: str | None
    args: dict[str, object] | list[object] | None
    input: str | None
    output: str | None
    error: str | None
    error_class: str | None
    status_code: int | None
    latency_ms: float | None

    @classmethod
    def of(cls, ev: Mapping[str, object]) -> HarnessEvent:
        kind = _text(ev.get("type") or ev.get("event")) or "event"
        error = _first_text(ev, _ERROR_KEYS)
        raw_status = ev.get("status", ev.get("outcome"))
        status = _STATUS.get(str(raw_status).strip().lower()) if raw_status is not None else None
        if status is None and isinstance(ev.get("ok"), bool):
            status = "success" if ev["ok"] else "failure"
        if status is None:
            status = "failure" if error or kind.lower() in _FAILING_TYPES else "success"
        args = next((ev[k] for k in _INPUT_KEYS if isinstance(ev.get(k), dict | list)), None)
        code = ev.get("status_code")
        return cls(
            kind=kind,
            name=_text(ev.get("name")),
            status=status,
            started_at=_first_time(ev, _START_KEYS),
            ended_at=_first_time(ev, _END_KEYS),
            tool=_first_text(ev, _TOOL_KEYS),
            args=args if isinstance(args, dict | list) else None,
            input=_first_text(ev, _INPUT_KEYS),
            output=_first_text(ev, _OUTPUT_KEYS),
            error=error,
            error_class=_first_text(ev, _ERROR_CLASS_KEYS),
            status_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            latency_ms=_number(ev.get("latency_ms", ev.get("duration_ms"))),
        )


def _text(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str)


def _first_text(ev: Mapping[str, object], keys: tuple[str, ...]) -> str | None:
    for k in keys:
        text = _text(ev.get(k))
        if text:
            return text
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _first_time(ev: Mapping[str, object], keys: tuple[str, ...]) -> datetime | None:
    for k in keys:
        at = parse_time(ev.get(k))
        if at is not None:
            return at
    return None


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 string (naive ones read as UTC: trials run with TZ=UTC) or Unix time in seconds or
    milliseconds; None for anything else or outside 1970–9999."""
    try:
        if isinstance(value, str):
            at = datetime.fromisoformat(value.strip())
            return at if at.tzinfo else at.replace(tzinfo=UTC)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e14:
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


# GenAI operations (gen_ai.operation.name, else the span name's first word) and OpenInference span
# kinds -> event types, in the vocabulary harnesses use in harness_events.jsonl.
_SPAN_TYPES = {
    "execute_tool": "tool_call",
    "chat": "llm_call",
    "text_completion": "llm_call",
    "generate_content": "llm_call",
    "embeddings": "embeddings",
    "invoke_agent": "agent",
    "create_agent": "agent",
}
_SPAN_KINDS = {
    "TOOL": "tool_call",
    "LLM": "llm_call",
    "EMBEDDING": "embeddings",
    "AGENT": "agent",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "GUARDRAIL": "guardrail",
}


def read_span_events(trial_dir: str, limit: int = EVENTS_LIMIT_BYTES) -> TrialEvents:
    """The spans of a trial's ``out/otel_spans.jsonl`` as events, in order of their start."""
    found = read_trial_events(trial_dir, f"out/{SPANS_FILE}", limit=limit)
    spans = sorted(found.events, key=_start_ns)
    return TrialEvents([span_event(sp) for sp in spans], found.note)


def _start_ns(span: Mapping[str, object]) -> int:
    start = span.get("start_ns")
    return start if isinstance(start, int) else 0


def span_event(span: Mapping[str, object]) -> dict[str, object]:
    """One span (``telemetry.Span.to_json``) as a harness event that ``HarnessEvent.of`` reads."""
    raw_attrs = span.get("attributes")
    a: Mapping[str, object] = raw_attrs if isinstance(raw_attrs, dict) else {}
    name = str(span.get("name") or "")
    operation = str(a.get("gen_ai.operation.name") or name.split(" ", 1)[0])
    by_kind = _SPAN_KINDS.get(str(a.get("openinference.span.kind") or "").upper())
    kind = "guardrail" if by_kind == "guardrail" else _SPAN_TYPES.get(operation) or by_kind or "span"
    failed = span.get("error") is True
    ev: dict[str, object] = {
        "type": kind,
        "name": name,
        "status": "error" if failed else "ok",
        "source": "otel",
        "trace_id": span.get("trace_id"),
        "span_id": span.get("span_id"),
        "parent_span_id": span.get("parent_span_id"),
    }
    start, end = span.get("start_ns"), span.get("end_ns")
    if isinstance(start, int) and start > 0:
        ev["started_at"] = _iso(start)
        if isinstance(end, int) and end >= start:
            ev["ended_at"] = _iso(end)
            ev["duration_ms"] = (end - start) / 1e6
    if kind == "tool_call":
        ev["tool"] = a.get("gen_ai.tool.name") or name.removeprefix("execute_tool ").strip() or None
        args = a.get("gen_ai.tool.call.arguments") or a.get("input.value")
        ev["args"] = _json_or_text(args)
        ev["output"] = a.get("gen_ai.tool.call.result") or a.get("output.value")
    if failed:
        ev["error"] = span.get("status_message") or a.get("exception.message") or "span status ERROR"
    for key, field in (
        ("error.type", "error_type"),
        ("http.response.status_code", "status_code"),
        ("gen_ai.request.model", "model"),
        ("gen_ai.usage.input_tokens", "input_tokens"),
        ("gen_ai.usage.output_tokens", "output_tokens"),
    ):
        if a.get(key) is not None:
            ev[field] = a[key]
    return {k: v for k, v in ev.items() if v is not None}


def _iso(ns: int) -> str | None:
    try:
        return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return None


def _json_or_text(value: object) -> object:
    """Tool arguments arrive as a JSON string (GenAI conventions): parsed when they are JSON."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
