"""Fleet aggregates over stored runs, computed in SQL: the overview, the p95 step latency (the same
nearest-rank value on SQLite and PostgreSQL) and per-version failure counts for RCA."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, and_, case, func, select

from opslab.store.tables import agent_runs, run_steps, tool_calls
from opslab.telemetry import CostShare, FailingTool, FleetSeries, Overview, SeriesPoint, VersionStat

FAILED_TOOL_STATUSES = ("failure", "timeout")


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
        success_rate=round(100.0 * successes / total, 2) if total else None,
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


def _bucket(conn: Connection, unit: str) -> Any:
    """The start of a run's hour or day, as text ``YYYY-MM-DD HH`` / ``YYYY-MM-DD`` on both databases."""
    col = agent_runs.c.started_at
    if conn.dialect.name == "postgresql":
        fmt = "YYYY-MM-DD HH24" if unit == "hour" else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", col), fmt)
    return func.substr(col, 1, 13 if unit == "hour" else 10)  # SQLite keeps naive UTC ISO text


def series(*, conn: Connection, since: datetime, hours: int) -> FleetSeries:
    """Runs, successes and cost per hour over two days or less, per day beyond; cost by model and agent."""
    unit: Literal["hour", "day"] = "hour" if hours <= 48 else "day"
    bucket = _bucket(conn, unit).label("bucket")
    window = agent_runs.c.started_at >= since
    success = func.coalesce(func.sum(case((agent_runs.c.status == "success", 1), else_=0)), 0)
    cost = func.coalesce(func.sum(agent_runs.c.total_cost_usd), 0.0)
    rows = conn.execute(
        select(bucket, func.count(), success, cost).where(window).group_by(bucket).order_by(bucket)
    ).all()
    points = []
    for key, n, ok, spent in rows:
        at = datetime.strptime(key, "%Y-%m-%d %H" if unit == "hour" else "%Y-%m-%d").replace(tzinfo=UTC)
        rate = round(100.0 * ok / n, 2) if n else None
        points.append(SeriesPoint(at=at, runs=n, successes=ok, success_rate=rate, cost_usd=round(spent, 6)))

    def by(column: Any) -> list[CostShare]:
        key = func.coalesce(column, "(none)")
        found = conn.execute(
            select(key, func.count(), cost).where(window).group_by(key).order_by(cost.desc(), key).limit(8)
        ).all()
        return [CostShare(key=k, runs=n, cost_usd=round(c, 6)) for k, n, c in found]

    return FleetSeries(
        hours=hours,
        bucket=unit,
        points=points,
        cost_by_model=by(agent_runs.c.model),
        cost_by_agent=by(agent_runs.c.agent_name),
    )
