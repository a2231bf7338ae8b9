"""The build log on SQLite and PostgreSQL: the newest builds (all, or of one status) and the success rate
of each run of N builds, aggregated in SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from opslab.autoops import BuildConfig, BuildContext, BuildRecord, BuildResult
from opslab.store import SqlBuildLog


def _record(n: int, ok: bool) -> BuildRecord:
    return BuildRecord(
        build_id=f"b{n:03d}",
        at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=n),
        source="simulated",
        config=BuildConfig(),
        context=BuildContext(),
        result=BuildResult(status="success", duration=1.0)
        if ok
        else BuildResult(status="failed", duration=1.0, error=f"boom {n}", error_class="oom"),
    )


def test_success_rates_per_run_of_builds_and_the_newest_failures(engine: Engine) -> None:
    log = SqlBuildLog(engine)
    assert log.success_rates(every=10, last=5) == [] and log.recent(limit=5) == []
    for n in range(25):  # builds 0-9: 2 failures, 10-19: 5, 20-24: 0
        log.append(_record(n, ok=not (n in (3, 7) or 10 <= n < 15)))
    assert log.success_rates(every=10, last=5) == [0.8, 0.5, 1.0]
    assert log.success_rates(every=10, last=2) == [0.5, 1.0]
    assert [b.build_id for b in log.recent(limit=3)] == ["b024", "b023", "b022"]
    assert [b.build_id for b in log.recent(limit=3, status="failed")] == ["b014", "b013", "b012"]
