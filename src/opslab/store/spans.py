"""OpenTelemetry spans kept per trace, so a trace is re-mapped whenever a late span of it arrives, and the
OTLP log records that name a trace."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select

from opslab.store.tables import otel_logs, otel_spans
from opslab.telemetry import LogRecord, Span


def add_spans(
    *, conn: Connection, spans: Sequence[Span], stored: set[tuple[str, str]] | None = None
) -> set[str]:
    """Keep ``spans``, each replacing a stored copy; ``stored`` (the keys already kept, when the caller
    read them in this transaction) spares a delete per new span."""
    keys = {(s.trace_id, s.span_id): s for s in spans}
    for trace_id, span_id in keys if stored is None else keys.keys() & stored:
        conn.execute(
            delete(otel_spans).where(otel_spans.c.trace_id == trace_id, otel_spans.c.span_id == span_id)
        )
    now = datetime.now(UTC)
    if keys:
        conn.execute(
            insert(otel_spans),
            [
                {"trace_id": t, "span_id": sid, "payload": s.to_json(), "received_at": now}
                for (t, sid), s in keys.items()
            ],
        )
    return {t for t, _ in keys}


def trace_spans(*, conn: Connection, trace_id: str) -> list[Span]:
    rows = conn.scalars(select(otel_spans.c.payload).where(otel_spans.c.trace_id == trace_id))
    return [Span.from_json(p) for p in rows]


def spans_of_traces(*, conn: Connection, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = {t: [] for t in trace_ids}
    for i in range(0, len(trace_ids), 500):
        chunk = trace_ids[i : i + 500]
        rows = conn.execute(
            select(otel_spans.c.trace_id, otel_spans.c.payload).where(otel_spans.c.trace_id.in_(chunk))
        )
        for trace_id, payload in rows:
            out[trace_id].append(Span.from_json(payload))
    return out


def add_logs(*, conn: Connection, records: Sequence[LogRecord]) -> int:
    if records:
        now = datetime.now(UTC)
        conn.execute(
            insert(otel_logs),
            [
                {
                    "trace_id": r.trace_id,
                    "span_id": r.span_id,
                    "at": r.at,
                    "severity": r.severity,
                    "body": r.body,
                    "attributes": r.attributes,
                    "received_at": now,
                }
                for r in records
            ],
        )
    return len(records)


def trace_logs(*, conn: Connection, trace_id: str, limit: int) -> list[LogRecord]:
    rows = conn.execute(
        select(otel_logs)
        .where(otel_logs.c.trace_id == trace_id)
        .order_by(otel_logs.c.at, otel_logs.c.log_id)
        .limit(limit)
    )
    return [LogRecord(r.trace_id, r.span_id, r.at, r.severity, r.body, r.attributes or {}) for r in rows]
