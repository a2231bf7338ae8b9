"""A real Prometheus scrapes a ``BuildMetrics`` registry over HTTP, and the dashboard's PromQL runs on it.

Needs the ``prometheus`` binary (see tests/prometheus_support.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opslab.api import ServerThread
from opslab.autoops import BuildMetrics, BuildResult
from tests.conftest import ROOT
from tests.prometheus_support import Prometheus, prometheus_binary, run_prometheus

DASHBOARD = ROOT / "deploy" / "grafana" / "autoops-dashboard.json"

# (status, error_class, duration): sorted durations 2 3 5 8 40 90 1800 -> the median lies in le=10,
# the 95th percentile in le=1800.
BUILDS = [
    ("success", None, 2.0),
    ("success", None, 40.0),
    ("success", None, 90.0),
    ("failed", "oom", 5.0),
    ("failed", "oom", 8.0),
    ("failed", "timeout", 1800.0),
    ("failed", "image_pull", 3.0),
]


def build(status: str, error_class: str | None, duration: float) -> BuildResult:
    return BuildResult.model_validate(
        {"status": status, "error_class": error_class, "duration": duration, "error": error_class}
    )


def metrics_app(metrics: BuildMetrics) -> Starlette:
    def exposition(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", exposition)])


@pytest.fixture
def metrics() -> BuildMetrics:
    return BuildMetrics()


@pytest.fixture
def prometheus(metrics: BuildMetrics, tmp_path: Path) -> Iterator[Prometheus]:
    prometheus_binary()  # skip (or fail) before starting anything
    with (
        ServerThread(metrics_app(metrics)) as target,
        run_prometheus(tmp_path, job="autoops", targets=[f"{target.host}:{target.port}"]) as server,
    ):
        yield server


def builds_by_label(server: Prometheus) -> dict[tuple[str, str], float]:
    return {
        (r["metric"]["status"], r["metric"]["error_class"]): float(r["value"][1])
        for r in server.query("autoops_builds_total")
    }


def scalar(results: list[dict[str, Any]]) -> float | None:
    if len(results) != 1:
        return None
    value = float(results[0]["value"][1])
    return None if math.isnan(value) else value


def test_prometheus_scrapes_build_counts_by_status_and_error_class(
    prometheus: Prometheus, metrics: BuildMetrics
) -> None:
    for status, error_class, duration in BUILDS:
        metrics.observe(build(status, error_class, duration))
    metrics.set_confidence(0.8)

    expected = {
        ("success", "none"): 3.0,
        ("failed", "oom"): 2.0,
        ("failed", "timeout"): 1.0,
        ("failed", "image_pull"): 1.0,
        ("failed", "dependency_resolution"): 0.0,
        ("failed", "flaky_test"): 0.0,
        ("failed", "unknown"): 0.0,
    }
    prometheus.until(
        "autoops_builds_total with the observed counts",
        lambda: True if builds_by_label(prometheus) == expected else None,
    )
    for result in prometheus.query("autoops_builds_total"):
        assert result["metric"]["job"] == "autoops"

    count = scalar(prometheus.query('autoops_build_duration_seconds_count{status="failed"}'))
    assert count == 4
    assert scalar(prometheus.query("autoops_optimizer_confidence")) == 0.8

    p50 = scalar(
        prometheus.query("histogram_quantile(0.5, sum by (le) (autoops_build_duration_seconds_bucket))")
    )
    p95 = scalar(
        prometheus.query("histogram_quantile(0.95, sum by (le) (autoops_build_duration_seconds_bucket))")
    )
    assert p50 is not None and 5 < p50 <= 10  # the median build took 8 s
    assert p95 is not None and 1200 < p95 <= 1800  # the slowest took 1800 s


def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    prometheus: Prometheus, metrics: BuildMetrics
) -> None:
    # rate() needs two scrapes with builds between them: one batch, a scrape, then another batch.
    for status, error_class, duration in BUILDS:
        metrics.observe(build(status, error_class, duration))
    prometheus.until(
        "the first batch scraped",
        lambda: True if builds_by_label(prometheus).get(("success", "none")) == 3 else None,
    )
    for status, error_class, duration in BUILDS:
        metrics.observe(build(status, error_class, duration))
    metrics.set_confidence(0.6)
    prometheus.until(
        "the second batch scraped",
        lambda: True if builds_by_label(prometheus).get(("success", "none")) == 6 else None,
    )

    dashboard = json.loads(DASHBOARD.read_text())
    targets = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(targets) >= 4
    for title, expr in targets:
        promql = expr.replace("$__rate_interval", "1m")
        results = prometheus.until(f"data for panel {title!r} ({promql})", numbers(prometheus, promql))
        for result in results:
            value = float(result["value"][1])
            assert math.isnan(value) or value >= 0, (title, result)


def numbers(server: Prometheus, promql: str) -> Callable[[], list[dict[str, Any]] | None]:
    """A probe: the query's results once at least one of them is a number (not NaN: no data yet)."""

    def probe() -> list[dict[str, Any]] | None:
        results = server.query(promql)
        return results if any(not math.isnan(float(r["value"][1])) for r in results) else None

    return probe
