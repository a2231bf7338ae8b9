"""OpenTelemetry spans kept per trace, so a trace is re-mapped whenever a late span of it arrives, and the
OTLP log records that name a trace."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic_core import to_json
from sqlalchemy import Connection, insert, select

from opslab.store.bulk import bulk_insert, datetime_param
from opslab.store.tables import otel_logs, otel_spans
from opslab.telemetry import LogRecord, Span


def add_spans(
    *,
    conn: Connection,
    spans: Sequence[Span],
    payloads: Sequence[str] | None = None,
    stored: set[tuple[str, str]] | None = None,
) -> set[str]:
    """Keep ``spans``, each replacing a stored copy (the last of a span sent twice wins); ``payloads``
    are their JSON texts when the caller made them already; ``stored`` (the keys already kept, when the
    caller read them in this transaction) spares a delete per new span."""
    texts = payloads if payloads is not None else [to_json(s.to_json()).decode() for s in spans]
    keys = {(s.trace_id, s.span_id): text for s, text in zip(spans, texts, strict=True)}
    replaced = list(keys if stored is None else keys.keys() & stored)
    if replaced:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(
            f"DELETE FROM {otel_spans.name} WHERE trace_id = {mark} AND span_id = {mark}", replaced
        )
    if keys:
        now = datetime_param(conn)(datetime.now(UTC))
        bulk_insert(
            conn=conn, table=otel_spans, rows=[(t, sid, text, now) for (t, sid), text in keys.items()]
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
