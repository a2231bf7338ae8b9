"""`make bench` runs every benchmark and the performance page lists each one: a new benchmark cannot be
left out of either, and the page renders from the stored results."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from bench.__main__ import SUITE
from bench.headlines import HEADLINES
from bench.performance import render
from sqlalchemy import create_engine, text

from tests.conftest import ROOT, fresh_postgres_database

HELPERS = {
    "__init__",
    "__main__",
    "_common",
    "_ingest_load",
    "_otlp_payload",
    "_otlp_schema_floor",
    "_responder_outside",
    "headlines",
    "performance",
}


def test_every_benchmark_is_in_the_suite_and_on_the_page() -> None:
    modules = {p.stem for p in (ROOT / "bench").glob("*.py")} - HELPERS
    assert {name for name, *_ in SUITE} == modules
    assert modules <= set(HEADLINES)
    # A benchmark may store a second series of its own (``responder --only-beside``: ``responder_beside``).
    assert all(name in modules or name.rsplit("_", 1)[0] in modules for name in HEADLINES)


def test_the_page_lists_each_benchmark_beside_its_floor_or_peer() -> None:
    page = render()
    assert page.startswith("# Performance")
    for name in HEADLINES:
        assert f"| {name} |" in page
    assert "JSON API, same filter" in page and "xargs -P" in page


def test_the_ingest_floor_writes_the_rows_opslab_stores(tmp_path: Path) -> None:
    """The raw-SQLite floor inserts into opslab's own migrated tables: a migration that adds a column
    must not leave it failing before it measures (run_steps grew from 13 to 18 columns)."""
    from bench.ingest import floor_sqlite

    floor = floor_sqlite(3, tmp_path)
    assert floor["runs"] == 3 and floor["runs_per_s"] > 0
    with sqlite3.connect(tmp_path / "floor-0.db") as db:
        counts = [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("agent_runs", "run_steps")]
    assert counts == [3, 12]  # the seed run: four steps each


def test_the_otlp_schema_floor_writes_the_rows_opslab_keeps_for_a_trace(tmp_path: Path) -> None:
    """The minimal writer of the store's own tables (the OTLP figure's second floor) writes what the
    service writes for the same export: a trace row, a run per trace, a step per span below its root."""
    from bench._otlp_payload import agent_exports
    from bench._otlp_schema_floor import schema_floor
    from bench.headlines import ingest

    found = schema_floor(agent_exports(2, 3, 4), tmp_path)
    assert found["spans"] == 24 and found["spans_per_s"] > 0
    with sqlite3.connect(tmp_path / "opslab.db") as db:
        tables = ("otel_traces", "agent_runs", "run_steps")
        counts = [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]
        started = db.execute("SELECT started_at FROM agent_runs LIMIT 1").fetchone()[0]
    assert counts == [6, 6, 18]
    assert started == "2025-11-23 12:13:20.000000"  # bench's T0, as the store's SQLite columns hold it
    over = {
        "over_floor": 0.13,
        "spans_per_s": 36000.0,
        "floor_spans_per_s": 280000.0,
        "schema_floor_spans_per_s": 65000.0,
        "schema_floor_over_floor": 0.232,
    }
    shown = [row for row in ingest({"otlp_over_floor": over}) if "minimal raw-sqlite3 writer" in row.figure]
    assert [(row.value, row.ratio, row.met) for row in shown] == [("65,000", "0.232×", None)]


def test_postgres_ingest_stands_beside_a_postgres_floor() -> None:
    """PostgreSQL's batch ingest is measured against psycopg writing the same rows into the same server,
    not against SQLite's floor (which made a PostgreSQL figure look short of a target set for SQLite)."""
    from bench.headlines import ingest
    from bench.ingest import floor_postgres

    with fresh_postgres_database("opslab_bench_t") as url:
        floor = floor_postgres(3, url)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                counts = [conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in ("agent_runs", "run_steps")]
        finally:
            engine.dispose()
    assert counts == [3, 12] and floor["how"] == "psycopg executemany" and floor["runs_per_s"] > 0
    result = {
        "floor_sqlite_executemany": {"runs_per_s": 14000.0},
        "sqlite": {
            "batch": {"runs_per_s": 5000.0},
            "floor": {"runs_per_s": 14000.0, "how": "sqlite3 executemany"},
        },
        "postgres": {
            "batch": {"runs_per_s": 2900.0},
            "floor": {"runs_per_s": 5800.0, "how": "psycopg executemany"},
        },
    }
    shown = {row.figure: row for row in ingest(result)}
    pg = shown["postgres: batch ingest, runs/s"]
    assert pg.peer == "raw PostgreSQL executemany (psycopg) 5,800" and pg.ratio == "0.50×" and pg.met
    assert shown["sqlite: batch ingest, runs/s"].peer == "raw SQLite executemany 14,000"
    older = {
        "floor_sqlite_executemany": {"runs_per_s": 14000.0},
        "postgres": {"batch": {"runs_per_s": 2900.0}},
    }
    assert ingest(older)[0].peer == "raw SQLite executemany 14,000"  # results from before name SQLite's


def test_a_figure_names_the_processor_it_was_measured_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ratio to a floor moves with the machine's processor: the page says which one, when the result
    recorded it (results from before it did still render)."""
    import bench.performance as performance

    stored = {
        "lab_isolation": {
            "date": "2026-11-26T20:00:00+00:00",
            "machine": {"cpus": 2, "cpu_model": "AMD EPYC", "python": "3.11.7"},
        },
        "rca": {"date": "2026-11-24T20:00:00+00:00", "machine": {"cpus": 2, "python": "3.11.7"}},
    }
    real = performance.newest
    monkeypatch.setattr(performance, "newest", lambda name: {**(real(name) or {}), **stored.get(name, {})})
    rows = [line for line in render().splitlines() if line.startswith(("| lab_isolation |", "| rca |"))]
    assert rows
    for row in rows:
        where = row.rstrip(" |").rsplit("| ", 1)[1]
        if row.startswith("| lab_isolation |"):
            assert where == "2026-11-26, 2 CPUs (AMD EPYC), Python 3.11.7"
        else:  # recorded before results named the processor
            assert where == "2026-11-24, 2 CPUs, Python 3.11.7"


def test_the_isolation_benchmark_says_what_a_file_costs_where_its_runs_are(tmp_path: Path) -> None:
    """A run creates a dozen inodes a trial where xargs creates none after its first round: the result
    carries what the file system charged for one, before and after, and the page shows it."""
    from bench.headlines import lab_isolation
    from bench.lab_isolation import PROBE_FILES, inode_probe, slow_filesystem

    cost = inode_probe(tmp_path)
    assert cost >= 0
    (probe,) = tmp_path.iterdir()
    assert len(list(probe.iterdir())) == PROBE_FILES  # made, not deleted: a deletion slows the next
    assert slow_filesystem(25.0, 31.0) is None
    warning = slow_filesystem(25.0, 310.5)
    assert warning is not None and "310 µs" in warning
    rows = lab_isolation({"filesystem": {"file_create_us_before": 25.0, "file_create_us_after": 310.5}})
    assert [(r.figure.split(":")[0], r.value) for r in rows] == [
        ("a file created where the runs are", "25.0 µs / 310.5 µs")
    ]
