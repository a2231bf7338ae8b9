"""/metrics reads the builds and the optimizer from the shared store, on SQLite and PostgreSQL: the build log
tallies builds by status, error class and duration in one query, and every process — one that ran no build
itself too — reports what ``opslab autoops status`` reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from opslab.autoops import (
    BuildConfig,
    BuildContext,
    BuildMetrics,
    BuildRecord,
    BuildResult,
)
from opslab.autoops.metrics import DURATION_BUCKETS
from opslab.config import Settings
from opslab.runtime import Runtime
from opslab.store import SqlBuildLog

BUILDS = [  # (status, error_class, duration)
    ("success", None, 2.0),
    ("success", None, 40.0),
    ("failed", "oom", 5.0),
    ("failed", "oom", 900.0),
    ("failed", None, 3.0),
]


def record(n: int, status: str, error_class: str | None, duration: float) -> BuildRecord:
    failed = status == "failed"
    return BuildRecord(
        build_id=f"b{n:03d}",
        at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=n),
        source="ci",
        config=BuildConfig(),
        context=BuildContext(),
        result=BuildResult.model_validate(
            {
                "status": status,
                "duration": duration,
                "error": "boom" if failed else None,
                "error_class": error_class,
            }
        ),
    )


def scrape(metrics: BuildMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("autoops_")
    }


def test_the_build_log_tallies_status_class_and_durations_in_sql(engine: Engine) -> None:
    log = SqlBuildLog(engine)
    assert log.tally(DURATION_BUCKETS) == []
    for n, (status, error_class, duration) in enumerate(BUILDS):
        log.append(record(n, status, error_class, duration))
    groups = {(g.status, g.error_class): g for g in log.tally((5.0, 60.0))}
    assert set(groups) == {("success", None), ("failed", "oom"), ("failed", None)}
    oom = groups[("failed", "oom")]
    assert (oom.count, oom.duration_sum, oom.within) == (2, 905.0, (1, 1))
    ok = groups[("success", None)]
    assert (ok.count, ok.duration_sum, ok.within) == (2, 42.0, (1, 2))


def test_a_process_that_ran_no_build_reports_the_stores_builds_and_confidence(settings: Settings) -> None:
    worker, server, status = (Runtime.build(settings, migrate=True) for _ in range(3))
    try:
        metrics = cast(BuildMetrics, server.autoops().observer)  # started first, as a service is
        auto = worker.autoops()
        for _ in range(12):  # another process builds: the server never sees these results
            auto.simulate()
        auto.record(
            config=BuildConfig(),
            context=BuildContext(),
            result=BuildResult(status="failed", duration=7.5, error="ssh: connect to host git.internal"),
            source="ci",
        )
        served = scrape(metrics)
        counts = status.autoops().builds.count()  # what `opslab autoops status` prints
        best = status.autoops().figures.best()
    finally:
        for rt in (worker, server, status):
            rt.close()
    totals = {labels: v for (name, labels), v in served.items() if name == "autoops_builds_total"}
    assert sum(totals.values()) == sum(counts.values()) == 13
    assert totals[(("error_class", "unknown"), ("status", "failed"))] == 1  # the unclassified one
    by_status = {
        dict(labels)["status"]: v for (name, labels), v in served.items() if name.endswith("_seconds_count")
    }
    assert by_status == {"success": counts.get("success", 0), "failed": counts["failed"]}
    assert served[("autoops_optimizer_confidence", ())] == best.confidence
