"""Agent-run repository: keyword-only functions over a Connection, and ``SqlRunRepository`` wrapping them.

Fleet metrics are computed in SQL; only the aggregates cross into Python.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Connection, Engine, Table, and_, case, delete, func, insert, or_, select

from opslab.errors import InvalidInput
from opslab.rca.evidence import VersionStat
from opslab.store.engine import write_tx
from opslab.store.tables import CHILD_TABLES, agent_runs, guardrail_events, otel_spans, run_steps, tool_calls
from opslab.telemetry import (
    AgentRunIn,
    FailingTool,
    Overview,
    PreparedRun,
    RunCounts,
    RunFilter,
    RunPage,
    RunSummary,
    UpsertStatus,
)
from opslab.telemetry.otlp import Span

_CHUNK = 500
FAILED_TOOL_STATUSES = ("failure", "timeout")


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def upsert_runs(*, conn: Connection, runs: Sequence[PreparedRun]) -> dict[str, UpsertStatus]:
    ids = [p.run.run_id for p in runs]
    existing: set[str] = set()
    for chunk in _chunks(ids):
        existing.update(conn.scalars(select(agent_runs.c.run_id).where(agent_runs.c.run_id.in_(chunk))))
    if existing:
        for chunk in _chunks(sorted(existing)):
            for table in (*CHILD_TABLES, agent_runs):
                conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
    dt = _datetime_param(conn)
    js = _json_param
    now = dt(datetime.now(UTC))
    run_rows: list[tuple[Any, ...]] = []
    step_rows: list[tuple[Any, ...]] = []
    call_rows: list[tuple[Any, ...]] = []
    guard_rows: list[tuple[Any, ...]] = []
    # Tuples in each table's column order (tables.py); checked by bulk_insert.
    for p in runs:
        r, rid = p.run, p.run.run_id
        run_at = dt(r.started_at)
        run_rows.append(
            (
                rid,
                r.agent_name,
                r.agent_version,
                r.model,
                r.environment,
                run_at,
                dt(r.ended_at),
                r.status,
                r.error_type,
                r.error_message,
                r.trace_id,
                js(r.correlation_ids),
                r.cost.tokens_prompt,
                r.cost.tokens_completion,
                r.cost.total_cost_usd,
                js(r.attributes),
                p.source,
                p.content_hash,
                now,
            )
        )
        step_rows.extend(
            (
                rid,
                seq,
                s.step_id,
                s.name,
                s.status,
                dt(s.started_at),
                dt(s.ended_at),
                s.input_summary,
                s.output_summary,
                s.retries,
                s.latency_ms,
                s.agent,
                run_at,
            )
            for seq, s in enumerate(r.steps)
        )
        call_rows.extend(
            (
                rid,
                seq,
                c.call_id,
                c.step_id,
                c.tool_name,
                c.status,
                js(c.args_json),
                c.args_hash,
                c.result_summary,
                c.error_class,
                c.error_message,
                c.status_code,
                c.retries,
                c.latency_ms,
                dt(c.started_at),
                dt(c.ended_at),
                run_at,
            )
            for seq, c in enumerate(r.tool_calls)
        )
        guard_rows.extend(
            (rid, seq, g.event_id, g.type, g.message, g.step_id, g.call_id, dt(g.created_at))
            for seq, g in enumerate(r.guardrail_events)
        )
    for table, rows in (
        (agent_runs, run_rows),
        (run_steps, step_rows),
        (tool_calls, call_rows),
        (guardrail_events, guard_rows),
    ):
        bulk_insert(conn=conn, table=table, rows=rows)
    return {i: ("updated" if i in existing else "created") for i in ids}


def bulk_insert(*, conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """``executemany`` straight on the driver, rows as tuples in the table's column order.

    Core's per-value bind processing costs several times the database's own insert time on
    ingest-sized batches; callers convert values once with ``_datetime_param``/``_json_param``.
    """
    if not rows:
        return
    names = [c.name for c in table.columns]
    if len(rows[0]) != len(names):
        raise ValueError(f"{table.name}: rows have {len(rows[0])} values for {len(names)} columns")
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
    conn.exec_driver_sql(sql, list(rows))


def _datetime_param(conn: Connection) -> Callable[[datetime | None], Any]:
    if conn.dialect.name != "sqlite":
        return lambda value: value

    def sqlite_text(value: datetime | None) -> str | None:
        # The text SQLAlchemy's SQLite DATETIME type writes (naive UTC), so both paths read back alike.
        if value is None:
            return None
        if value.utcoffset():
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    return sqlite_text


def _json_param(value: Any) -> str | None:
    return None if value is None else to_json(value).decode()


def _counts_query(run_ids: Sequence[str]) -> Any:
    def count_of(table: Any, *extra: Any) -> Any:
        return (
            select(table.c.run_id, func.count().label("n"))
            .where(table.c.run_id.in_(run_ids), *extra)
            .group_by(table.c.run_id)
        )

    return {
        "steps": count_of(run_steps),
        "tool_calls": count_of(tool_calls),
        "failed_tool_calls": count_of(tool_calls, tool_calls.c.status.in_(FAILED_TOOL_STATUSES)),
        "guardrail_events": count_of(guardrail_events),
    }


def _counts(conn: Connection, run_ids: Sequence[str]) -> dict[str, RunCounts]:
    out = {rid: RunCounts() for rid in run_ids}
    for name, query in _counts_query(run_ids).items():
        for rid, n in conn.execute(query):
            setattr(out[rid], name, n)
    return out


def _summary(row: Any, counts: RunCounts) -> RunSummary:
    m = row._mapping
    return RunSummary(
        run_id=m["run_id"],
        agent_name=m["agent_name"],
        agent_version=m["agent_version"],
        model=m["model"],
        environment=m["environment"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        status=m["status"],
        error_type=m["error_type"],
        error_message=m["error_message"],
        trace_id=m["trace_id"],
        correlation_ids=m["correlation_ids"] or [],
        total_cost_usd=m["total_cost_usd"],
        tokens_prompt=m["tokens_prompt"],
        tokens_completion=m["tokens_completion"],
        source=m["source"],
        content_hash=m["content_hash"],
        ingested_at=m["ingested_at"],
        counts=counts,
    )


def get_summary(*, conn: Connection, run_id: str) -> RunSummary | None:
    row = conn.execute(select(agent_runs).where(agent_runs.c.run_id == run_id)).first()
    if row is None:
        return None
    return _summary(row, _counts(conn, [run_id])[run_id])


def load_run(*, conn: Connection, run_id: str) -> AgentRunIn | None:
    row = conn.execute(select(agent_runs).where(agent_runs.c.run_id == run_id)).first()
    if row is None:
        return None
    m = dict(row._mapping)

    def children(table: Any, drop: tuple[str, ...]) -> list[dict[str, Any]]:
        rows = conn.execute(select(table).where(table.c.run_id == run_id).order_by(table.c.seq))
        return [{k: v for k, v in r._mapping.items() if k not in drop} for r in rows]

    common = ("run_id", "seq", "run_started_at")
    return AgentRunIn.model_validate(
        {
            "run_id": m["run_id"],
            "agent_name": m["agent_name"],
            "agent_version": m["agent_version"],
            "model": m["model"],
            "environment": m["environment"],
            "started_at": m["started_at"],
            "ended_at": m["ended_at"],
            "status": m["status"],
            "error_type": m["error_type"],
            "error_message": m["error_message"],
            "trace_id": m["trace_id"],
            "correlation_ids": m["correlation_ids"] or [],
            "steps": children(run_steps, common),
            "tool_calls": children(tool_calls, common),
            "guardrail_events": children(guardrail_events, common),
            "cost": {
                "tokens_prompt": m["tokens_prompt"],
                "tokens_completion": m["tokens_completion"],
                "total_cost_usd": m["total_cost_usd"],
            },
            "attributes": m["attributes"] or {},
        }
    )


def encode_cursor(started_at: datetime, run_id: str) -> str:
    raw = json.dumps([started_at.isoformat(), run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, run_id = json.loads(raw)
        return datetime.fromisoformat(at), str(run_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInput.for_field("cursor", "not a cursor this service issued") from exc


def list_runs(*, conn: Connection, flt: RunFilter, cursor: str | None, limit: int) -> RunPage:
    q = select(agent_runs)
    if flt.status:
        q = q.where(agent_runs.c.status == flt.status)
    if flt.agent_name:
        q = q.where(agent_runs.c.agent_name == flt.agent_name)
    if flt.environment:
        q = q.where(agent_runs.c.environment == flt.environment)
    if flt.since:
        q = q.where(agent_runs.c.started_at >= flt.since)
    if cursor:
        at, rid = decode_cursor(cursor)
        q = q.where(
            or_(agent_runs.c.started_at < at, and_(agent_runs.c.started_at == at, agent_runs.c.run_id < rid))
        )
    rows = list(
        conn.execute(q.order_by(agent_runs.c.started_at.desc(), agent_runs.c.run_id.desc()).limit(limit + 1))
    )
    page, more = rows[:limit], len(rows) > limit
    counts = _counts(conn, [r._mapping["run_id"] for r in page]) if page else {}
    items = [_summary(r, counts[r._mapping["run_id"]]) for r in page]
    nxt = encode_cursor(items[-1].started_at, items[-1].run_id) if more and items else None
    return RunPage(items=items, next_cursor=nxt)


def overview(*, conn: Connection, since: datetime, hours: int, top_tools: int = 5) -> Overview:
    total, successes, cost = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((agent_runs.c.status == "success", 1), else_=0)), 0),
            func.coalesce(func.sum(agent_runs.c.total_cost_usd), 0.0),
        ).where(agent_runs.c.started_at >= since)
    ).one()
    failing = conn.execute(
        select(tool_calls.c.tool_name, func.count().label("n"))
        .where(tool_calls.c.status.in_(FAILED_TOOL_STATUSES), tool_calls.c.run_started_at >= since)
        .group_by(tool_calls.c.tool_name)
        .order_by(func.count().desc(), tool_calls.c.tool_name)
        .limit(top_tools)
    ).all()
    return Overview(
        hours=hours,
        total_runs=total,
        success_rate=round(100.0 * successes / total, 2) if total else 0.0,
        top_failing_tools=[FailingTool(tool=name, count=n) for name, n in failing],
        p95_step_latency_ms=_p95_step_latency(conn, since),
        total_cost_usd=round(float(cost), 6),
    )


# Below this many steps in the window, sorting them is cheapest; above it, walking the latency index
# from the top is: that walk visits about (1 - 0.95) of all indexed steps whatever the window.
_SORT_AT_MOST = 5000


def _p95_step_latency(
    conn: Connection, since: datetime, *, sort_at_most: int = _SORT_AT_MOST
) -> float | None:
    """Nearest-rank p95 (what ``percentile_disc(0.95)`` returns), the same way on both databases."""
    window = and_(run_steps.c.run_started_at >= since, run_steps.c.latency_ms.is_not(None))
    n = conn.scalar(select(func.count()).select_from(run_steps).where(window)) or 0
    if n == 0:
        return None
    rank = math.ceil(0.95 * n)  # 1-based position in ascending order
    q = select(run_steps.c.latency_ms).where(window).limit(1)
    if n <= sort_at_most:
        q = q.order_by(run_steps.c.latency_ms).offset(rank - 1)
    else:
        q = q.order_by(run_steps.c.latency_ms.desc()).offset(n - rank)
        q = q.with_hint(run_steps, "INDEXED BY ix_run_steps_latency", "sqlite")
    value = conn.scalar(q)
    return None if value is None else float(value)


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


def version_stats(*, conn: Connection, agent_name: str) -> list[VersionStat]:
    """Runs and failures per version of one agent, oldest version first (by its first run)."""
    first = func.min(agent_runs.c.started_at)
    rows = conn.execute(
        select(
            agent_runs.c.agent_version,
            func.count(),
            func.sum(case((agent_runs.c.status != "success", 1), else_=0)),
            first,
        )
        .where(agent_runs.c.agent_name == agent_name, agent_runs.c.agent_version.is_not(None))
        .group_by(agent_runs.c.agent_version)
        .order_by(first)
    ).all()
    return [
        VersionStat(version=v, runs=n, failures=int(f or 0), first_seen_order=i)
        for i, (v, n, f, _) in enumerate(rows)
    ]


class SqlRunRepository:
    """``telemetry.RunRepository`` on a SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert_runs(self, runs: Sequence[PreparedRun]) -> dict[str, UpsertStatus]:
        with write_tx(self.engine) as conn:
            return upsert_runs(conn=conn, runs=runs)

    def get_summary(self, run_id: str) -> RunSummary | None:
        with self.engine.connect() as conn:
            return get_summary(conn=conn, run_id=run_id)

    def load_run(self, run_id: str) -> AgentRunIn | None:
        with self.engine.connect() as conn:
            return load_run(conn=conn, run_id=run_id)

    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> RunPage:
        with self.engine.connect() as conn:
            return list_runs(conn=conn, flt=flt, cursor=cursor, limit=limit)

    def overview(self, *, since: datetime, hours: int, top_tools: int = 5) -> Overview:
        with self.engine.connect() as conn:
            return overview(conn=conn, since=since, hours=hours, top_tools=top_tools)

    def add_spans(self, spans: Sequence[Span]) -> set[str]:
        with write_tx(self.engine) as conn:
            return add_spans(conn=conn, spans=spans)

    def trace_spans(self, trace_id: str) -> list[Span]:
        with self.engine.connect() as conn:
            return trace_spans(conn=conn, trace_id=trace_id)

    def version_stats(self, agent_name: str) -> list[VersionStat]:
        with self.engine.connect() as conn:
            return version_stats(conn=conn, agent_name=agent_name)
