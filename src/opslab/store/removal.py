"""Taking runs out of the store: one run (``DELETE /agent-runs/{id}``) or every run started before a time
(retention, ``opslab runs prune``). A run goes with everything kept for it: its steps, tool calls,
guardrail events and tags, its scores, its RCA reports (the ``rca`` jobs about it, with their events), and
the spans and log records of its trace once no other run holds that trace."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, select

from opslab.store.keyed import chunks
from opslab.store.locks import RUNS, TRACES, lock_keys
from opslab.store.tables import (
    CHILD_TABLES,
    agent_runs,
    job_events,
    jobs,
    otel_logs,
    otel_traces,
    run_scores,
)

RCA_KIND = "rca"  # the job kind whose subject is a run (opslab.rca)


def delete_runs(*, conn: Connection, run_ids: Sequence[str]) -> list[str]:
    """Delete these runs and what belongs to them (see the module docstring); the ids that existed."""
    found = []
    for chunk in chunks(run_ids):
        found += list(
            conn.execute(
                select(agent_runs.c.run_id, agent_runs.c.trace_id).where(agent_runs.c.run_id.in_(list(chunk)))
            )
        )
    if not found:
        return []
    ids = sorted(r for r, _ in found)
    traces = sorted({t for _, t in found if t})
    lock_keys(conn=conn, kind=TRACES, keys=traces)
    lock_keys(conn=conn, kind=RUNS, keys=ids)
    for chunk in chunks(ids):
        for table in (*CHILD_TABLES, run_scores):
            conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
        reports = select(jobs.c.id).where(jobs.c.kind == RCA_KIND, jobs.c.subject.in_(chunk))
        conn.execute(delete(job_events).where(job_events.c.job_id.in_(reports)))
        conn.execute(delete(jobs).where(jobs.c.kind == RCA_KIND, jobs.c.subject.in_(chunk)))
        conn.execute(delete(agent_runs).where(agent_runs.c.run_id.in_(chunk)))
    for chunk in chunks(traces):
        kept = set(conn.scalars(select(agent_runs.c.trace_id).where(agent_runs.c.trace_id.in_(chunk))))
        gone = [t for t in chunk if t not in kept]
        if gone:
            conn.execute(delete(otel_traces).where(otel_traces.c.trace_id.in_(gone)))
            conn.execute(delete(otel_logs).where(otel_logs.c.trace_id.in_(gone)))
    return ids


def runs_started_before(*, conn: Connection, before: datetime, limit: int) -> list[str]:
    """Up to ``limit`` ids of runs started before ``before``, oldest first."""
    return list(
        conn.scalars(
            select(agent_runs.c.run_id)
            .where(agent_runs.c.started_at < before)
            .order_by(agent_runs.c.started_at, agent_runs.c.run_id)
            .limit(limit)
        )
    )
