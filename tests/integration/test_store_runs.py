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
