"""OpenTelemetry spans kept per trace, one row a trace (``otel_traces``), so a trace is re-mapped whenever a
late span of it arrives; and the OTLP log records that name a trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json
from sqlalchemy import Connection, insert, select

from opslab.store.bulk import bulk_insert, datetime_param
from opslab.store.keyed import chunks, select_in
from opslab.store.tables import otel_logs, otel_traces
from opslab.telemetry import LogRecord, Span


def add_spans(*, conn: Connection, traces: Mapping[str, str], stored: Mapping[str, list[Span]]) -> None:
    """Keep each trace's spans as ``traces`` gives them (its row's JSON array, ``telemetry.TracePlan``): a
    trace new to the store is one new row, one with spans ``stored`` has its row rewritten whole."""
    now = datetime_param(conn.dialect.name)(datetime.now(UTC))
    new: list[tuple[str, str, Any]] = []
    grown: list[tuple[str, Any, str]] = []
    for trace_id, text in traces.items():
        if stored.get(trace_id):
            grown.append((text, now, trace_id))
        else:
            new.append((trace_id, text, now))
    if new:
        bulk_insert(conn=conn, table=otel_traces, rows=new)
    if grown:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(
            f"UPDATE {otel_traces.name} SET spans = {mark}, received_at = {mark} WHERE trace_id = {mark}",
            grown,
        )


def trace_spans(*, conn: Connection, trace_id: str) -> list[Span]:
    return spans_of_traces(conn=conn, trace_ids=[trace_id])[trace_id]


def spans_of_traces(*, conn: Connection, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = {t: [] for t in trace_ids}
    for chunk in chunks(trace_ids):
        for trace_id, spans in select_in(conn, "trace_id, spans", otel_traces.name, "trace_id", chunk):
            # The driver's own value: the JSON text on SQLite, the array parsed already by psycopg.
            data = from_json(spans) if isinstance(spans, str | bytes) else spans
            out[trace_id] = [Span.from_row(trace_id, s) for s in data]
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
