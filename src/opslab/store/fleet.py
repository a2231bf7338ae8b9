"""Fleet aggregates over stored runs, computed in SQL: the overview, the p95 step latency (the same
nearest-rank value on SQLite and PostgreSQL), the series over time with its cost shares, and per-version
failure counts for RCA."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from sqlalchemy import (
    ColumnClause,
    Connection,
    TextClause,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    null,
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
# Each unit as the SQL literal the series groups by (never text built from a value at query time).
_UNIT_SQL: dict[Unit, ColumnClause[str]] = {"hour": literal_column("'hour'"), "day": literal_column("'day'")}
_UTC_SQL: ColumnClause[str] = literal_column("'UTC'")


@dataclass(slots=True)
class _Tally:
    """Runs, successes and cost of a bucket, or of a (model, agent) pair, over the window."""

    runs: int = 0
    successes: int = 0
    cost: float = 0.0

    def add(self, runs: int, successes: int, cost: float) -> None:
        self.runs += runs
        self.successes += successes
        self.cost += cost


Buckets = list[tuple[str, _Tally]]  # by start (text), oldest first
Pairs = list[tuple[str | None, str, _Tally]]  # by model and agent

# SQLite sums each (bucket, pair) cell of the window as one range of ix_agent_runs_pair: every run is
# read once, and no statement groups or sorts. A cell costs a seek even when empty, so past this many
# cells (about 2 ms of seeks) it reads the window twice instead: per bucket, then per pair.
_ONE_PASS_CELLS = 1000


def series(
    *, conn: Connection, since: datetime, hours: int, one_pass_cells: int = _ONE_PASS_CELLS
) -> FleetSeries:
    """Runs, successes and cost per hour over two days or less, per day beyond; cost by model and agent.

    Both databases tally the window per bucket and per (model, agent) pair in SQL; the shares are summed
    from the pairs. PostgreSQL tallies each (bucket, model, agent) cell in one scan (``_cell_tally``).
    SQLite has no hash aggregate (a GROUP BY no index orders sorts every run of the window, then spills
    to disk), so it sums index ranges instead (``_sqlite_tally``): no sort, and no dependence on
    ANALYZE."""
    unit: Unit = "hour" if hours <= 48 else "day"
    if conn.dialect.name == "sqlite":
        buckets, pairs = _sqlite_tally(conn, since, unit, one_pass_cells=one_pass_cells)
    else:
        buckets, pairs = _cell_tally(conn, since, unit)
    fmt = "%Y-%m-%d %H" if unit == "hour" else "%Y-%m-%d"
    points = [
        SeriesPoint(
            at=datetime.strptime(at, fmt).replace(tzinfo=UTC),
            runs=t.runs,
            successes=t.successes,
            success_rate=round(100.0 * t.successes / t.runs, 2),
            cost_usd=round(t.cost, 6),
        )
        for at, t in buckets
    ]
    return FleetSeries(
        hours=hours,
        bucket=unit,
        points=points,
        cost_by_model=_top((model if model is not None else "(none)", t) for model, _, t in pairs),
        cost_by_agent=_top((agent, t) for _, agent, t in pairs),
    )


def _top(tallies: Iterable[tuple[str, _Tally]]) -> list[CostShare]:
    """The TOP_SHARES keys with runs in the window, by cost then by key."""
    by_key: dict[str, _Tally] = {}
    for key, t in tallies:
        by_key.setdefault(key, _Tally()).add(t.runs, t.successes, t.cost)
    ranked = sorted((kt for kt in by_key.items() if kt[1].runs), key=lambda kt: (-kt[1].cost, kt[0]))
    return [CostShare(key=k, runs=t.runs, cost_usd=round(t.cost, 6)) for k, t in ranked[:TOP_SHARES]]


def _cell_tally(conn: Connection, since: datetime, unit: Unit) -> tuple[Buckets, Pairs]:
    """PostgreSQL: one scan of the window, each run counted in its (bucket, model, agent) cell, then the
    cells summed per bucket and per pair in the same statement (a day by the hour can hold thousands of
    cells; summed in Python, they made its series ~10 ms slower). One grouping, which parallel workers
    share, where hashing the bucket and the pair groupings at once (``GROUPING SETS``) takes one process,
    and twice the time on two cores. ``date_trunc`` per run, ``to_char`` per bucket; the bucket is written
    with literals, as migration 0017's statistics name it, so that the planner expects a cell per bucket
    and pair, not one per run, and hashes them rather than sort the window."""
    c = agent_runs.c
    key = func.date_trunc(_UNIT_SQL[unit], func.timezone(_UTC_SQL, c.started_at))
    cells = (
        select(
            key.label("at"),
            c.model,
            c.agent_name,
            func.count().label("n"),
            func.count().filter(c.status == "success").label("ok"),
            func.coalesce(func.sum(c.total_cost_usd), 0.0).label("spent"),
        )
        .where(c.started_at >= since)
        .group_by(key, c.model, c.agent_name)
        .cte("cells")
    )
    fmt = "YYYY-MM-DD HH24" if unit == "hour" else "YYYY-MM-DD"
    sums = (func.sum(cells.c.n), func.sum(cells.c.ok), func.sum(cells.c.spent))
    pair = (cells.c.model, cells.c.agent_name)
    rows = conn.execute(
        union_all(
            select(func.to_char(cells.c.at, fmt), null(), null(), *sums).group_by(cells.c.at),
            select(null(), *pair, *sums).group_by(*pair),
        )
    ).all()
    buckets: Buckets = []
    pairs: Pairs = []
    for at, model, agent, n, ok, spent in rows:  # sums of counts come back as numeric
        tally = _Tally(int(n), int(ok), float(spent))
        if at is None:  # a pair's row
            pairs.append((model, agent, tally))
        else:
            buckets.append((at, tally))
    buckets.sort(key=lambda b: b[0])
    return buckets, pairs


class _Range(NamedTuple):
    """An index range of runs whose sums go to ``into`` (a cell's to its bucket and its pair)."""

    sql: str
    values: tuple[str | None, ...]
    into: tuple[_Tally, ...]


_SUMS = (
    "SELECT ?, count(*), count(*) FILTER (WHERE status = 'success'), total(total_cost_usd) FROM agent_runs"
)
_OF_PAIR = f"{_SUMS} INDEXED BY ix_agent_runs_pair WHERE model IS ? AND agent_name = ? AND started_at >= ?"
_OF_CELL = f"{_OF_PAIR} AND started_at < ?"
_OF_BUCKET = f"{_SUMS} INDEXED BY ix_agent_runs_window WHERE started_at >= ? AND started_at < ?"
# Ranges summed per statement: a compound SELECT has at most 500 terms, and a statement 999 variables
# before SQLite 3.32.
_RANGES_PER_STATEMENT = 100


def _sqlite_tally(
    conn: Connection, since: datetime, unit: Unit, *, one_pass_cells: int
) -> tuple[Buckets, Pairs]:
    """The window's tallies as sums of index ranges, up to _RANGES_PER_STATEMENT in one statement."""
    spans = conn.execute(_SQLITE_BUCKETS[unit], {"since": since}).all()
    if not spans:
        return [], []
    buckets: Buckets = [(at, _Tally()) for at, _, _ in spans]
    pairs: Pairs = [(model, agent, _Tally()) for model, agent in conn.execute(_SQLITE_PAIRS)]
    if len(buckets) * len(pairs) <= one_pass_cells:
        ranges = [
            _Range(_OF_CELL, (model, agent, lo, hi), (bucket, pair))
            for (_, lo, hi), (_, bucket) in zip(spans, buckets, strict=True)
            for model, agent, pair in pairs
        ]
    else:
        ranges = [
            _Range(_OF_BUCKET, (lo, hi), (bucket,))
            for (_, lo, hi), (_, bucket) in zip(spans, buckets, strict=True)
        ]
        since_text = spans[0].lo  # where the window's first run is
        ranges += [_Range(_OF_PAIR, (model, agent, since_text), (pair,)) for model, agent, pair in pairs]
    for first in range(0, len(ranges), _RANGES_PER_STATEMENT):
        chunk = ranges[first : first + _RANGES_PER_STATEMENT]
        sql = " UNION ALL ".join(r.sql for r in chunk)
        params = tuple(v for i, r in enumerate(chunk, first) for v in (i, *r.values))
        for i, n, ok, spent in conn.exec_driver_sql(sql, params):
            for tally in ranges[i].into:
                tally.add(n, ok, spent)
    return buckets, pairs


def _sqlite_buckets(unit: Unit) -> TextClause:
    """The window's non-empty buckets: each one's start (text) and the bounds of its runs in the window.
    Walks them one index seek apart (the first run at or after the next bucket's start). Stored times are
    naive-UTC text 'YYYY-MM-DD HH:MM:SS.ffffff', so a bucket is a prefix and its bounds compare as text."""
    # The next bucket's start, as text (the backslash keeps text() from taking ":00" for a parameter).
    after = r"strftime('%Y-%m-%d %H', at || '\:00', '+1 hour')" if unit == "hour" else "date(at, '+1 day')"
    width = 13 if unit == "hour" else 10
    sql = f"""
        WITH RECURSIVE bucket(at) AS (
            SELECT substr(min(started_at), 1, {width}) FROM agent_runs WHERE started_at >= :since
            UNION ALL
            SELECT substr((SELECT min(started_at) FROM agent_runs WHERE started_at >= {after}), 1, {width})
            FROM bucket WHERE at IS NOT NULL
        )
        SELECT at, max(at, :since) AS lo, {after} AS hi FROM bucket WHERE at IS NOT NULL ORDER BY at"""
    return text(sql).bindparams(bindparam("since", type_=UTCDateTime()))


_SQLITE_BUCKETS: dict[Unit, TextClause] = {u: _sqlite_buckets(u) for u in ("hour", "day")}
_PAIR_INDEX = "agent_runs INDEXED BY ix_agent_runs_pair"
# Every (model, agent) pair ever stored, one seek apart: the models, then each model's agents from its
# first on (runs without a model are one more model, hence "IS").
_SQLITE_PAIRS = text(f"""
    WITH RECURSIVE models(m) AS (
        SELECT min(model) FROM {_PAIR_INDEX}
        UNION ALL
        SELECT (SELECT min(model) FROM {_PAIR_INDEX} WHERE model > models.m) FROM models WHERE m IS NOT NULL
    ),
    pairs(m, a) AS (
        SELECT NULL, (SELECT min(agent_name) FROM {_PAIR_INDEX} WHERE model IS NULL)
        UNION ALL
        SELECT m, (SELECT min(agent_name) FROM {_PAIR_INDEX} WHERE model = models.m)
        FROM models WHERE m IS NOT NULL
        UNION ALL
        SELECT m, (SELECT min(agent_name) FROM {_PAIR_INDEX} WHERE model IS pairs.m AND agent_name > pairs.a)
        FROM pairs WHERE a IS NOT NULL
    )
    SELECT m, a FROM pairs WHERE a IS NOT NULL""")
