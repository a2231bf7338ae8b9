"""The harness's event stream (``harness_events.jsonl``): read, counted, and interpreted.

The events are the harness's own, one JSON object a line, in no fixed shape. The runner counts them by
``type``; ``HarnessEvent.of`` reads the fields most harnesses write (a name, a status, timestamps, a tool
name, inputs and outputs) under their common spellings, so that a trial can become an agent run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

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
    """The events of the first of ``paths`` that exists; lines that are not JSON objects are skipped."""
    for p in paths:
        try:
            with open(p, errors="replace") as f:
                lines = f.read().splitlines()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        out = []
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                out.append(ev)
        return out
    return []


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
