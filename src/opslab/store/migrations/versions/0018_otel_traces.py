"""A trace's spans kept as one row (``otel_traces``) instead of one row per span (``otel_spans``).

A trace's spans are only ever read and written together (an export re-maps every trace it touches), so
one row a trace spares the database a row and a primary-key entry per span: an OTLP export of 2,000 spans
in 200 traces wrote 2,000 rows, now 200 (bench/ingest.py). The spans move over a trace at a time, each
trace's array in span-id order (the order the old table's key kept them in).

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-26
"""

from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

from opslab.store.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_BATCH = 500  # traces moved per statement


def upgrade() -> None:
    traces = op.create_table(
        "otel_traces",
        sa.Column("trace_id", sa.String(64), primary_key=True),
        sa.Column("spans", sa.JSON, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    old = _old_table()
    query = sa.select(old.c.trace_id, old.c.payload, old.c.received_at).order_by(
        old.c.trace_id, old.c.span_id
    )
    rows = op.get_bind().execute(query.execution_options(yield_per=_BATCH))  # streamed, never held whole
    _insert(
        traces,
        ({"trace_id": t, "spans": spans, "received_at": at} for t, spans, at in _by_trace(rows)),
    )
    op.drop_table("otel_spans")


def downgrade() -> None:
    old = op.create_table(
        "otel_spans",
        sa.Column("trace_id", sa.String(64), primary_key=True),
        sa.Column("span_id", sa.String(64), primary_key=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    traces = sa.table(
        "otel_traces",
        sa.column("trace_id", sa.String(64)),
        sa.column("spans", sa.JSON),
        sa.column("received_at", UTCDateTime()),
    )
    query = sa.select(traces.c.trace_id, traces.c.spans, traces.c.received_at)
    rows = op.get_bind().execute(query.execution_options(yield_per=_BATCH))
    _insert(
        old,
        (
            {"trace_id": t, "span_id": span["span_id"], "payload": span, "received_at": at}
            for t, spans, at in rows
            for span in spans
        ),
    )
    op.drop_table("otel_traces")


def _insert(table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
    """``rows`` inserted ``_BATCH`` at a time."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH:
            op.bulk_insert(table, batch)
            batch = []
    if batch:
        op.bulk_insert(table, batch)


def _old_table() -> sa.TableClause:
    return sa.table(
        "otel_spans",
        sa.column("trace_id", sa.String(64)),
        sa.column("span_id", sa.String(64)),
        sa.column("payload", sa.JSON),
        sa.column("received_at", UTCDateTime()),
    )


def _by_trace(rows: Any) -> Iterator[tuple[str, list[Any], Any]]:
    """(trace id, its spans, when the last of them arrived), a trace at a time from rows in trace order."""
    current: str | None = None
    spans: list[Any] = []
    latest: Any = None
    for trace_id, payload, received_at in rows:
        if trace_id != current:
            if current is not None:
                yield current, spans, latest
            current, spans, latest = trace_id, [], received_at
        spans.append(payload)
        latest = max(latest, received_at)
    if current is not None:
        yield current, spans, latest
