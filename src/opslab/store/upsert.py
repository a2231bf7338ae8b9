"""Writing runs: one upsert per batch (replace a run and its children), its rows bound in bulk
(``store.rows``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, delete, select

from opslab.store.bulk import Batch, insert_batches
from opslab.store.locks import RUNS, lock_keys
from opslab.store.rows import RunRows
from opslab.store.tables import CHILD_TABLES, agent_runs
from opslab.telemetry import PreparedRun, UpsertStatus

_CHUNK = 500


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def upsert_runs(*, conn: Connection, runs: Sequence[PreparedRun]) -> dict[str, UpsertStatus]:
    return upsert_rows(
        conn=conn, ids=[p.run_id for p in runs], rows=RunRows.of(conn.dialect.name, runs).batches()
    )


def upsert_rows(*, conn: Connection, ids: Sequence[str], rows: Sequence[Batch]) -> dict[str, UpsertStatus]:
    """Write the runs ``ids`` as ``rows`` holds them (``RunRows.batches``), each replacing what is
    stored of it."""
    lock_keys(conn=conn, kind=RUNS, keys=ids)  # before reading which exist: see store.locks
    existing: set[str] = set()
    for chunk in _chunks(ids):
        existing.update(conn.scalars(select(agent_runs.c.run_id).where(agent_runs.c.run_id.in_(chunk))))
    if existing:
        for chunk in _chunks(sorted(existing)):
            for table in (*CHILD_TABLES, agent_runs):
                conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
    insert_batches(conn, rows)
    return {i: ("updated" if i in existing else "created") for i in ids}


def drop_stale_trace_runs(*, conn: Connection, trace_ids: Sequence[str], keep: set[str]) -> list[str]:
    """Remove the OTLP runs of these traces that they no longer make (a late parent span merged them)."""
    stale: list[str] = []
    for chunk in _chunks(sorted(set(trace_ids))):
        found = conn.scalars(
            select(agent_runs.c.run_id).where(agent_runs.c.trace_id.in_(chunk), agent_runs.c.source == "otlp")
        )
        stale.extend(r for r in found if r not in keep)
    for chunk in _chunks(stale):
        for table in (*CHILD_TABLES, agent_runs):
            conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
    return stale
