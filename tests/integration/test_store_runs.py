"""The run repository on SQLite and PostgreSQL: upsert, reads, pagination, SQL aggregates, migrations."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select

from opslab.store import (
    CHECKPOINT_TABLES,
    SqlRunRepository,
    bulk,
    current_revision,
    head_revision,
    newest_revision,
)
from opslab.store.tables import metadata, run_steps, tool_calls
from opslab.telemetry import Redactor, RunFilter, TelemetryService, parse_run, prepare_run


@pytest.fixture
def svc(engine: Engine) -> TelemetryService:
    return TelemetryService(SqlRunRepository(engine), redactor=Redactor())


def test_migrations_create_exactly_the_declared_tables(engine: Engine) -> None:
    assert current_revision(engine) == head_revision() == newest_revision()
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": lambda name, kind, _parent: (
                    not (kind == "table" and name in CHECKPOINT_TABLES)
                )
            },
        )
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_upsert_replaces_children_atomically(
    svc: TelemetryService, engine: Engine, run_001: dict[str, Any]
) -> None:
    assert svc.ingest(run_001).status == "created"
    smaller = copy.deepcopy(run_001)
    smaller["tool_calls"] = smaller["tool_calls"][1:2]
    smaller["guardrail_events"] = []
    assert svc.ingest(smaller).status == "updated"
    counts = svc.summary("run-001-sufficient").counts
    assert (counts.steps, counts.tool_calls, counts.failed_tool_calls, counts.guardrail_events) == (
        4,
        1,
        0,
        0,
    )
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(tool_calls)) == 1
        assert conn.scalar(select(func.count()).select_from(run_steps)) == 4


def test_a_failing_write_leaves_nothing_behind(
    svc: TelemetryService, engine: Engine, run_001: dict[str, Any]
) -> None:
    svc.ingest(run_001)
    good = prepare_run(parse_run(run_001), redactor=Redactor())
    other = copy.deepcopy(run_001)
    other["run_id"] = "other"
    broken = prepare_run(parse_run(other), redactor=Redactor())
    # A value the database refuses (over the column size on PostgreSQL, a NOT NULL on both).
    broken.run.steps[0].name = None  # type: ignore[assignment]
    with pytest.raises(Exception):  # noqa: B017 - any database error will do
        svc.repo.upsert_runs([good, broken])
    assert svc.repo.get_summary("other") is None
    assert svc.summary("run-001-sufficient").counts.steps == 4


def test_load_run_round_trips(svc: TelemetryService, run_001: dict[str, Any]) -> None:
    svc.ingest(run_001)
    assert svc.run("run-001-sufficient") == parse_run(run_001)


def test_runs_written_in_statements_of_many_rows_read_back_as_sent(
    svc: TelemetryService, monkeypatch: pytest.MonkeyPatch, run_001: dict[str, Any]
) -> None:
    # SQLite writes a batch's rows as statements of many rows: made small here, so that a batch spans
    # several statements (a last one shorter), under a limit of bound values that cuts them shorter still,
    # with rows of different NULL patterns (each pattern its own batch). PostgreSQL's executemany alike.
    monkeypatch.setattr(bulk, "SQLITE_ROWS", 3)
    monkeypatch.setattr(bulk, "_sqlite_variables", lambda conn: 40)
    runs = []
    for i in range(7):
        run = copy.deepcopy(run_001)
        run["run_id"] = f"many-{i}"
        for k, step in enumerate(run["steps"]):
            if (i + k) % 2:
                step.pop("latency_ms", None)
                step["input_summary"] = f"input {i}/{k}"
        runs.append(run)
    result = svc.ingest_batch(runs)
    assert [r.status for r in result.results] == ["created"] * 7
    for run in runs:
        assert svc.run(run["run_id"]) == parse_run(run)


def _runs(n: int, start: datetime) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append(
            {
                "run_id": f"r-{i:03d}",
                "agent_name": "a" if i % 2 else "b",
                "environment": "prod" if i % 3 else "dev",
                "started_at": (start + timedelta(minutes=i)).isoformat(),
                "status": "success" if i % 4 else "failure",
                "steps": [{"step_id": "s1", "name": "x", "status": "success", "latency_ms": float(i)}],
                "tool_calls": [
                    {
                        "call_id": "c1",
                        "step_id": "s1",
                        "tool_name": f"t{i % 3}",
                        "status": "failure" if i % 4 == 0 else "success",
                    }
                ],
                "cost": {"total_cost_usd": 0.01},
            }
        )
    return out


def test_list_filters_and_cursor_pagination(svc: TelemetryService) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert svc.ingest_batch(_runs(25, start)).failed == 0
    seen: list[str] = []
    cursor = None
    while True:
        page = svc.list_runs(RunFilter(), cursor=cursor, limit=7)
        seen += [r.run_id for r in page.items]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == [f"r-{i:03d}" for i in reversed(range(25))]
    page = svc.list_runs(RunFilter(agent_name="a", environment="prod", status="success"), limit=100)
    expected = {f"r-{i:03d}" for i in range(25) if i % 2 and i % 3 and i % 4}
    assert {r.run_id for r in page.items} == expected
    since = svc.list_runs(RunFilter(since=start + timedelta(minutes=20)), limit=100)
    assert len(since.items) == 5


def test_overview_is_computed_in_sql_and_matches_a_reference(svc: TelemetryService) -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    old = _runs(5, now - timedelta(days=30))
    for r in old:
        r["run_id"] = "old-" + r["run_id"]
    recent = _runs(40, now - timedelta(hours=1))
    svc.ingest_batch(old + recent)
    ov = svc.overview(24, now=now)
    assert ov.total_runs == 40
    assert ov.success_rate == round(100 * sum(1 for i in range(40) if i % 4) / 40, 2)
    latencies = sorted(float(i) for i in range(40))
    assert ov.p95_step_latency_ms == latencies[math.ceil(0.95 * 40) - 1]
    assert ov.total_cost_usd == pytest.approx(0.4)
    assert [t.tool for t in ov.top_failing_tools] == ["t0", "t1", "t2"]
    assert sum(t.count for t in ov.top_failing_tools) == 10
    empty = svc.overview(1, now=now + timedelta(days=300))
    assert (empty.total_runs, empty.success_rate, empty.p95_step_latency_ms) == (0, None, None)


def test_p95_walks_the_index_from_the_top_with_the_same_answer(svc: TelemetryService, engine: Engine) -> None:
    from opslab.store.fleet import _p95_step_latency

    now = datetime(2026, 1, 2, tzinfo=UTC)
    runs = _runs(60, now - timedelta(hours=2))
    for i, r in enumerate(runs):
        r["steps"][0]["latency_ms"] = float((i * 37) % 61)
    svc.ingest_batch(runs)
    since = now - timedelta(hours=1, minutes=30)  # a window holding some of the runs, not all
    with engine.connect() as conn:
        sorted_way = _p95_step_latency(conn, since, sort_at_most=10_000)
        walked = _p95_step_latency(conn, since, sort_at_most=1)
    in_window = sorted(float((i * 37) % 61) for i in range(60) if i >= 30)
    assert sorted_way == walked == in_window[math.ceil(0.95 * len(in_window)) - 1]


def _run(
    run_id: str,
    at: datetime | str,
    *,
    status: str = "success",
    cost: float | None = 0.25,
    model: str | None = None,
    agent: str = "a",
) -> dict[str, Any]:
    run: dict[str, Any] = {
        "run_id": run_id,
        "agent_name": agent,
        "started_at": at if isinstance(at, str) else at.isoformat(),
        "status": status,
    }
    if model is not None:
        run["model"] = model
    if cost is not None:
        run["cost"] = {"total_cost_usd": cost}
    return run


def _points(series: Any) -> list[tuple[datetime, int, int, float | None, float]]:
    return [(p.at, p.runs, p.successes, p.success_rate, p.cost_usd) for p in series.points]


def test_series_counts_per_hour_from_the_exact_start_of_the_window(svc: TelemetryService) -> None:
    day = datetime(2026, 1, 1, tzinfo=UTC)

    def at(h: int, m: int = 0, s: int = 0, us: int = 0) -> datetime:
        return day + timedelta(hours=h, minutes=m, seconds=s, microseconds=us)

    assert (
        svc.ingest_batch(
            [
                _run("before-window", at(19, 29, 59, 999_999)),
                _run("window-start", at(19, 30), status="failure", cost=0.5),
                _run("end-of-19h", at(19, 59, 59, 999_999)),
                _run("start-of-20h", at(20), cost=None),
                _run("22h", at(22, 15), status="timeout", cost=1.25),
                _run("next-day", at(24, 10)),
            ]
        ).failed
        == 0
    )
    # Five hours back from 00:30 is 19:30: the 19h bucket holds only what started from then on.
    series = svc.series(5, now=at(24, 30))
    assert series.bucket == "hour"
    assert _points(series) == [
        (at(19), 2, 1, 50.0, 0.75),
        (at(20), 1, 1, 100.0, 0.0),
        (at(22), 1, 0, 0.0, 1.25),  # no point for the empty 21h
        (at(24), 1, 1, 100.0, 0.25),
    ]


def test_series_past_two_days_counts_per_utc_day(svc: TelemetryService) -> None:
    assert (
        svc.ingest_batch(
            [
                _run("before-window", datetime(2026, 1, 2, 5, 59, tzinfo=UTC)),
                _run("window-start", datetime(2026, 1, 2, 6, tzinfo=UTC), status="failure"),
                _run("east-of-utc", "2026-01-03T01:30:00+02:00", cost=1.0),  # 23:30 UTC on the 2nd
                _run("end-of-2nd", datetime(2026, 1, 2, 23, 59, 59, 999_999, tzinfo=UTC)),
                _run("start-of-3rd", datetime(2026, 1, 3, tzinfo=UTC), status="cancelled", cost=None),
                _run("5th", datetime(2026, 1, 5, 5, tzinfo=UTC), cost=2.5),
            ]
        ).failed
        == 0
    )
    series = svc.series(72, now=datetime(2026, 1, 5, 6, tzinfo=UTC))
    assert series.bucket == "day"
    assert _points(series) == [
        (datetime(2026, 1, 2, tzinfo=UTC), 3, 2, 66.67, 1.5),
        (datetime(2026, 1, 3, tzinfo=UTC), 1, 0, 0.0, 0.0),
        (datetime(2026, 1, 5, tzinfo=UTC), 1, 1, 100.0, 2.5),
    ]
    assert svc.series(48, now=datetime(2026, 1, 5, 6, tzinfo=UTC)).bucket == "hour"


def test_series_cost_shares_are_the_top_eight_by_cost_then_by_key(svc: TelemetryService) -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    spec: list[tuple[str | None, str, int, float | None]] = [  # model, agent, runs, cost of each
        ("gpt-b", "chat", 4, 0.5),
        ("gpt-a", "chat", 1, 2.0),  # ties gpt-b at 2.0: the key decides
        ("c1", "ops", 1, 1.75),
        ("c2", "ops", 1, 1.5),
        ("c3", "ops", 2, 0.625),
        ("c4", "ops", 1, 1.0),
        ("c5", "ops", 3, 0.25),
        (None, "batch", 2, 0.25),  # no model: "(none)"
        ("c6", "batch", 1, 0.25),  # ninth: cut
        ("c7", "batch", 1, None),  # no cost: 0.0, cut
    ]
    runs = [
        _run(f"{model}-{i}", now - timedelta(minutes=10 + i), model=model, agent=agent, cost=cost)
        for model, agent, n, cost in spec
        for i in range(n)
    ]
    runs.append(_run("old", now - timedelta(days=3), model="retired", agent="retired", cost=100.0))
    assert svc.ingest_batch(runs).failed == 0
    series = svc.series(24, now=now)
    assert [(c.key, c.runs, c.cost_usd) for c in series.cost_by_model] == [
        ("gpt-a", 1, 2.0),
        ("gpt-b", 4, 2.0),
        ("c1", 1, 1.75),
        ("c2", 1, 1.5),
        ("c3", 2, 1.25),
        ("c4", 1, 1.0),
        ("c5", 3, 0.75),
        ("(none)", 2, 0.5),
    ]
    assert [(c.key, c.runs, c.cost_usd) for c in series.cost_by_agent] == [
        ("ops", 8, 6.25),
        ("chat", 5, 4.0),
        ("batch", 4, 0.75),
    ]


def test_series_matches_a_reference_over_many_runs(svc: TelemetryService) -> None:
    import random

    rng = random.Random(7)
    now = datetime(2026, 3, 1, 12, 20, tzinfo=UTC)
    runs = [
        _run(
            f"r{i}",
            now - timedelta(minutes=rng.randint(0, 60 * 24 * 4)),
            status=rng.choice(["success", "success", "failure", "timeout"]),
            cost=rng.randint(0, 16) / 8,  # eighths: every sum is exact, in any order
            model=f"m{rng.randint(0, 11):02d}",
            agent=f"agent{rng.randint(0, 9)}",
        )
        for i in range(400)
    ]
    assert svc.ingest_batch(runs).failed == 0
    for hours in (24, 48, 72):
        since = now - timedelta(hours=hours)
        inside = [r for r in runs if datetime.fromisoformat(r["started_at"]) >= since]
        width = 13 if hours <= 48 else 10
        buckets: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(inside, key=lambda r: str(r["started_at"])):
            buckets.setdefault(str(r["started_at"])[:width], []).append(r)

        def share(field: str, inside: list[dict[str, Any]]) -> list[tuple[str, int, float]]:
            found: dict[str, list[float]] = {}
            for r in inside:
                found.setdefault(r[field], []).append(r["cost"]["total_cost_usd"])
            ranked = sorted(found.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:8]
            return [(key, len(costs), sum(costs)) for key, costs in ranked]

        series = svc.series(hours, now=now)
        assert [(p.at.isoformat()[:width], p.runs) for p in series.points] == [
            (key, len(rs)) for key, rs in buckets.items()
        ]
        assert [(p.successes, p.cost_usd) for p in series.points] == [
            (sum(r["status"] == "success" for r in rs), sum(r["cost"]["total_cost_usd"] for r in rs))
            for rs in buckets.values()
        ]
        assert [(c.key, c.runs, c.cost_usd) for c in series.cost_by_model] == share("model", inside)
        assert [(c.key, c.runs, c.cost_usd) for c in series.cost_by_agent] == share("agent_name", inside)


def test_series_of_an_empty_window_is_empty(svc: TelemetryService) -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    for hours in (24, 24 * 30):  # an empty store, then runs all outside the window
        empty = svc.series(hours, now=now)
        assert (empty.points, empty.cost_by_model, empty.cost_by_agent) == ([], [], [])
        svc.ingest_batch([_run(f"old-{hours}", now - timedelta(days=40), model="m")])
