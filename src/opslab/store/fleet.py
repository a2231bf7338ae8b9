"""Fleet aggregates over stored runs, computed in SQL: the overview, the p95 step latency (the same
nearest-rank value on SQLite and PostgreSQL), the series over time with its cost shares, and per-version
failure counts for RCA."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Row,
    TextClause,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
    text,
    union_all,
)

from opslab.store.tables import agent_runs, run_steps, tool_calls
from opslab.store.types import UTCDateTime
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


Unit = Literal["hour", "day"]
TOP_SHARES = 8


def series(*, conn: Connection, since: datetime, hours: int) -> FleetSeries:
    """Runs, successes and cost per hour over two days or less, per day beyond; cost by model and agent.

    PostgreSQL groups the window's runs by hashing. SQLite has no hash aggregate: it groups by sorting
    unless rows come in the grouping's order, and sorting a large window costs it several times the scan
    (then spills to disk). So on SQLite the series walks indexes instead (``_sqlite_points``,
    ``_sqlite_shares``): same results, no sort of the window's runs, no dependence on ANALYZE."""
    unit: Unit = "hour" if hours <= 48 else "day"
    if conn.dialect.name == "sqlite":
        buckets = conn.execute(_SQLITE_POINTS[unit], {"since": since}).all()
        by_model, by_agent = (
            _shares(conn.execute(_SQLITE_SHARES[column], {"since": since}))
            for column in ("model", "agent_name")
        )
    else:
        buckets = _hashed_points(conn, since, unit)
        by_model, by_agent = _hashed_shares(conn, since)
    points = []
    for at, n, ok, spent in buckets:
        points.append(
            SeriesPoint(
                at=datetime.strptime(at, "%Y-%m-%d %H" if unit == "hour" else "%Y-%m-%d").replace(tzinfo=UTC),
                runs=n,
                successes=ok,
                success_rate=round(100.0 * ok / n, 2),
                cost_usd=round(spent, 6),
            )
        )
    return FleetSeries(
        hours=hours,
        bucket=unit,
        points=points,
        cost_by_model=by_model,
        cost_by_agent=by_agent,
    )


def _shares(rows: Iterable[Sequence[Any]]) -> list[CostShare]:
    return [CostShare(key=key, runs=int(n), cost_usd=round(spent, 6)) for key, n, spent in rows]


def _sqlite_points(unit: Unit) -> TextClause:
    """Per bucket: its start (text), runs, successes, cost. Walks the non-empty buckets one index seek
    apart (the first run at or after the next bucket's start) and sums each bucket's range of
    ``ix_agent_runs_window``: no sort, and no statistics needed. Stored times are naive-UTC text
    'YYYY-MM-DD HH:MM:SS.ffffff', so a bucket is a prefix and its bounds compare as text."""
    # The next bucket's start, as text (the backslash keeps text() from taking ":00" for a parameter).
    after = r"strftime('%Y-%m-%d %H', at || '\:00', '+1 hour')" if unit == "hour" else "date(at, '+1 day')"
    width = 13 if unit == "hour" else 10
    in_bucket = "FROM agent_runs WHERE started_at >= lo AND started_at < hi"
    sql = f"""
        WITH RECURSIVE bucket(at) AS (
            SELECT substr(min(started_at), 1, {width}) FROM agent_runs WHERE started_at >= :since
            UNION ALL
            SELECT substr((SELECT min(started_at) FROM agent_runs WHERE started_at >= {after}), 1, {width})
            FROM bucket WHERE at IS NOT NULL
        ),
        span(at, lo, hi) AS (SELECT at, max(at, :since), {after} FROM bucket WHERE at IS NOT NULL)
        SELECT at,
            (SELECT count(*) {in_bucket}),
            (SELECT count(*) {in_bucket} AND status = 'success'),
            (SELECT total(total_cost_usd) {in_bucket})
        FROM span ORDER BY at"""
    return text(sql).bindparams(bindparam("since", type_=UTCDateTime()))


def _sqlite_shares(column: str) -> TextClause:
    """The top models (agents) by cost in the window. Steps through the distinct values one seek apart on
    ``ix_agent_runs_model_cost`` (``ix_agent_runs_agent_cost``), then reads each value's runs since the
    window's start as one range of it: fed the values in order, the GROUP BY follows the index (no sort
    of the window's runs), whatever the statistics. One seek per value ever stored."""
    # Runs without a value (a model is optional) are their own share, "(none)", as IN never matches NULL.
    unset = (
        f"UNION ALL SELECT NULL, count(*), sum(total_cost_usd) FROM agent_runs"
        f" WHERE {column} IS NULL AND started_at >= :since"
        if agent_runs.c[column].nullable
        else ""
    )
    sql = f"""
        WITH RECURSIVE k(v) AS (
            SELECT min({column}) FROM agent_runs
            UNION ALL
            SELECT (SELECT min({column}) FROM agent_runs WHERE {column} > k.v) FROM k WHERE v IS NOT NULL
        ),
        share(v, n, cost) AS (
            SELECT {column}, count(*), sum(total_cost_usd) FROM agent_runs
            WHERE {column} IN (SELECT v FROM k) AND started_at >= :since GROUP BY {column}
            {unset}
        )
        SELECT coalesce(v, '(none)') AS name, sum(n), coalesce(sum(cost), 0.0) AS spent
        FROM share WHERE n > 0 GROUP BY name ORDER BY spent DESC, name LIMIT {TOP_SHARES}"""
    return text(sql).bindparams(bindparam("since", type_=UTCDateTime()))


_SQLITE_POINTS: dict[Unit, TextClause] = {u: _sqlite_points(u) for u in ("hour", "day")}
_SQLITE_SHARES = {c: _sqlite_shares(c) for c in ("model", "agent_name")}


def _hashed_points(conn: Connection, since: datetime, unit: Unit) -> Sequence[Row[Any]]:
    """Per bucket: its start as text, runs, successes, cost. ``date_trunc`` per run, ``to_char`` per
    group (formatting every run costs more than the scan)."""
    key = func.date_trunc(unit, func.timezone("UTC", agent_runs.c.started_at))
    fmt = "YYYY-MM-DD HH24" if unit == "hour" else "YYYY-MM-DD"
    success = func.count().filter(agent_runs.c.status == "success")
    cost = func.coalesce(func.sum(agent_runs.c.total_cost_usd), 0.0)
    return conn.execute(
        select(func.to_char(key, fmt), func.count(), success, cost)
        .where(agent_runs.c.started_at >= since)
        .group_by(key)
        .order_by(key)
    ).all()


def _hashed_shares(conn: Connection, since: datetime) -> tuple[list[CostShare], list[CostShare]]:
    """The top models and agents by cost, from one pass grouping the window by (model, agent)."""
    pairs = (
        select(
            agent_runs.c.model,
            agent_runs.c.agent_name,
            func.count().label("runs"),
            func.sum(agent_runs.c.total_cost_usd).label("cost"),
        )
        .where(agent_runs.c.started_at >= since)
        .group_by(agent_runs.c.model, agent_runs.c.agent_name)
        .cte("pairs")
    )

    def top(kind: str, column: Any) -> Any:
        key = func.coalesce(column, "(none)")
        spent = func.coalesce(func.sum(pairs.c.cost), 0.0)
        ranked = (
            select(
                literal(kind).label("kind"),
                key.label("key"),
                func.sum(pairs.c.runs).label("runs"),
                spent.label("cost"),
                func.row_number().over(order_by=(spent.desc(), key)).label("rank"),
            )
            .group_by(key)
            .order_by(spent.desc(), key)
            .limit(TOP_SHARES)
            .subquery(kind)
        )
        return select(ranked)

    both = union_all(top("model", pairs.c.model), top("agent", pairs.c.agent_name)).subquery("shares")
    rows = conn.execute(
        select(both.c.kind, both.c.key, both.c.runs, both.c.cost).order_by(both.c.kind, both.c.rank)
    ).all()
    by_model, by_agent = (_shares(r[1:] for r in rows if r.kind == kind) for kind in ("model", "agent"))
    return by_model, by_agent
