"""OpenTelemetry spans kept per trace, so a trace is re-mapped whenever a late span of it arrives."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select

from opslab.store.tables import otel_spans
from opslab.telemetry import Span


def add_spans(*, conn: Connection, spans: Sequence[Span]) -> set[str]:
    keys = {(s.trace_id, s.span_id): s for s in spans}
    for trace_id, span_id in keys:
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
