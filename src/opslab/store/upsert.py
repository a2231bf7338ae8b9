"""Writing runs: one upsert per batch (replace a run and its children), its rows bound in bulk
(``store.rows``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from opslab.store.bulk import Batch, insert_batches
from opslab.store.keyed import chunks, delete_in, select_in
from opslab.store.locks import RUNS, lock_keys
from opslab.store.rows import RunRows
from opslab.store.tables import CHILD_TABLES, agent_runs
from opslab.telemetry import PreparedRun, UpsertStatus


def upsert_runs(*, conn: Connection, runs: Sequence[PreparedRun]) -> dict[str, UpsertStatus]:
    return upsert_rows(
        conn=conn, ids=[p.run_id for p in runs], rows=RunRows.of(conn.dialect.name, runs).batches()
    )


def upsert_rows(*, conn: Connection, ids: Sequence[str], rows: Sequence[Batch]) -> dict[str, UpsertStatus]:
    """Write the runs ``ids`` as ``rows`` holds them (``RunRows.batches``), each replacing what is
    stored of it."""
    lock_keys(conn=conn, kind=RUNS, keys=ids)  # before reading which exist: see store.locks
    existing: set[str] = set()
    for chunk in chunks(ids):
        existing.update(r for (r,) in select_in(conn, "run_id", agent_runs.name, "run_id", chunk))
    _delete_runs(conn, sorted(existing))
    insert_batches(conn, rows)
    return {i: ("updated" if i in existing else "created") for i in ids}


def drop_stale_trace_runs(*, conn: Connection, trace_ids: Sequence[str], keep: set[str]) -> list[str]:
    """Remove the OTLP runs of these traces that they no longer make (a late parent span merged them)."""
    stale: list[str] = []
    for chunk in chunks(sorted(set(trace_ids))):
        found = select_in(conn, "run_id", agent_runs.name, "trace_id", chunk, also="source = 'otlp'")
        stale.extend(r for (r,) in found if r not in keep)
    _delete_runs(conn, stale)
    return stale


def _delete_runs(conn: Connection, run_ids: Sequence[str]) -> None:
    """The runs ``run_ids`` and everything kept for them (its children first)."""
    for chunk in chunks(run_ids):
        for table in (*CHILD_TABLES, agent_runs):
            delete_in(conn, table.name, "run_id", chunk)
