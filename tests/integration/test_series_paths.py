"""The fleet series on SQLite reads the window once (a range per bucket and pair) or twice (per bucket,
then per pair) with the same answer, and PostgreSQL (hashing) gives it too, for the same runs."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from opslab.store import SqlRunRepository, make_engine, upgrade
from opslab.store.fleet import series
from opslab.telemetry import FleetSeries, Redactor, TelemetryService
from tests.conftest import fresh_postgres_database

NOW = datetime(2026, 3, 1, 12, 20, tzinfo=UTC)
WINDOWS = (5, 24, 48, 72, 24 * 30)


def _runs(cost: Callable[[random.Random], float | None]) -> list[dict[str, Any]]:
    """Runs over the five days before NOW and a few after it (a clock ahead), with a dozen models, none
    (counted as "(none)", with a model of that name), ten agents; ``cost(rng)`` gives each run's cost."""
    rng = random.Random(11)
    runs = []
    for i in range(600):
        run: dict[str, Any] = {
            "run_id": f"r{i}",
            "agent_name": f"agent{rng.randint(0, 9)}",
            "started_at": (NOW + timedelta(minutes=rng.randint(-60 * 24 * 5, 90))).isoformat(),
            "status": rng.choice(["success", "success", "failure", "timeout"]),
        }
        model = rng.choice([None, "(none)", *(f"m{k:02d}" for k in range(12))])
        if model is not None:
            run["model"] = model
        spent = cost(rng)
        if spent is not None:
            run["cost"] = {"total_cost_usd": spent}
        runs.append(run)
    return runs


def _series(engine: Engine, hours: int, **kw: Any) -> FleetSeries:
    with engine.connect() as conn:
        return series(conn=conn, since=NOW - timedelta(hours=hours), hours=hours, **kw)


def _eighths(rng: random.Random) -> float | None:
    return None if rng.random() < 0.1 else rng.randint(0, 16) / 8  # every sum exact, in any order


def _cost(run: dict[str, Any]) -> float:
    return float(run.get("cost", {}).get("total_cost_usd", 0.0))


def _top(runs: list[dict[str, Any]], key_of: Callable[[dict[str, Any]], str]) -> list[tuple[str, int, float]]:
    found: dict[str, list[float]] = {}
    for r in runs:
        found.setdefault(key_of(r), []).append(_cost(r))
    ranked = sorted(found.items(), key=lambda kv: (-sum(kv[1]), kv[0]))[:8]
    return [(key, len(costs), sum(costs)) for key, costs in ranked]


def test_one_pass_and_two_passes_give_the_reference_answer(engine: Engine) -> None:
    runs = _runs(_eighths)
    svc = TelemetryService(SqlRunRepository(engine), redactor=Redactor())
    assert svc.ingest_batch(runs).failed == 0
    for hours in WINDOWS:
        since = NOW - timedelta(hours=hours)
        inside = [r for r in runs if datetime.fromisoformat(r["started_at"]) >= since]
        width = 13 if hours <= 48 else 10
        buckets: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(inside, key=lambda r: str(r["started_at"])):
            buckets.setdefault(datetime.fromisoformat(r["started_at"]).isoformat()[:width], []).append(r)

        one, two = _series(engine, hours, one_pass_cells=10**9), _series(engine, hours, one_pass_cells=0)
        assert one == two == svc.series(hours, now=NOW)
        assert [(p.at.isoformat()[:width], p.runs, p.successes, p.cost_usd) for p in one.points] == [
            (at, len(rs), sum(r["status"] == "success" for r in rs), sum(_cost(r) for r in rs))
            for at, rs in buckets.items()
        ]
        by_model = _top(inside, lambda r: r.get("model", "(none)"))
        assert [(c.key, c.runs, c.cost_usd) for c in one.cost_by_model] == by_model
        assert [(c.key, c.runs, c.cost_usd) for c in one.cost_by_agent] == _top(
            inside, lambda r: r["agent_name"]
        )


def test_sqlite_and_postgresql_give_the_same_series(tmp_path: Path) -> None:
    runs = _runs(lambda rng: None if rng.random() < 0.1 else rng.random() / 100)
    found: dict[str, list[FleetSeries]] = {}
    with fresh_postgres_database("opslab_series") as postgres:
        for url in (f"sqlite:///{tmp_path / 'series.db'}", postgres):
            engine = make_engine(url)
            upgrade(engine)
            svc = TelemetryService(SqlRunRepository(engine), redactor=Redactor())
            assert svc.ingest_batch(runs).failed == 0
            found[engine.dialect.name] = [svc.series(hours, now=NOW) for hours in WINDOWS]
            engine.dispose()
    assert found["sqlite"] == found["postgresql"]
    assert all(s.points and s.cost_by_model and s.cost_by_agent for s in found["sqlite"])


def test_postgresql_hashes_the_cells_of_an_analysed_table() -> None:
    """Once ANALYZE has run, the planner must not take each run of the window for a cell of its own and
    sort them all: migration 0017's statistics name the series' bucket expressions, so it expects a cell
    per day and (model, agent) pair. 20,000 runs over the month before NOW, with the least hash memory
    PostgreSQL allows (64 kB), where a sort wins unless the planner knows how few cells there are; and
    two days by the hour. One grouping of the window (parallel workers can share it), never two at once
    (``GROUPING SETS``)."""
    statements: list[tuple[str, Any]] = []
    with fresh_postgres_database("opslab_series") as url:
        engine = make_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO agent_runs (run_id, agent_name, model, started_at, status, total_cost_usd, "
                    "correlation_ids, attributes, source, content_hash, ingested_at) "
                    "SELECT 'r' || g, 'agent' || (g % 10), 'm' || (g % 12), "
                    ":now - (g % 43200) * interval '1 minute', 'success', 0.01, '{}', '{}', 'native', 'x', "
                    ":now "
                    "FROM generate_series(1, 20000) g"
                ),
                {"now": NOW},
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE agent_runs")

        def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            statements.append((statement, parameters))

        # The month by the day with 64 kB; two days by the hour (about a cell a run there) with the default.
        for hours, unit, work_mem in ((24 * 30, "day", "64kB"), (48, "hour", None)):
            statements.clear()
            with engine.connect() as conn:
                event.listen(conn, "before_cursor_execute", seen)
                found = series(conn=conn, since=NOW - timedelta(hours=hours), hours=hours)
                event.remove(conn, "before_cursor_execute", seen)
                if work_mem:
                    conn.execute(text(f"SET LOCAL work_mem = '{work_mem}'"))
                statement, parameters = statements[-1]
                plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
            assert found.points
            if unit == "day":
                assert sum(p.runs for p in found.points) == 20_000
            cells = plan.split("CTE cells", 1)[1].split("\n")
            assert "HashAggregate" in cells[1], plan
            assert f"Group Key: date_trunc('{unit}'" in cells[2], plan
            assert "MixedAggregate" not in plan and "Sort Key: (date_trunc" not in plan, plan
        engine.dispose()
