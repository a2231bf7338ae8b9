"""The Grafana dashboard and the Prometheus config in deploy/ against the series the monitor exposes:
a panel that names a series ``BuildMetrics`` does not expose would draw "No data" forever."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from opslab.autoops import SERIES, BuildMetrics, BuildResult
from opslab.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "autoops-dashboard.json"
PROMETHEUS_YML = ROOT / "deploy" / "prometheus.yml"
METRIC = re.compile(r"\bautoops_[a-z_]+")


def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed children included."""
    for panel in node.get("panels", []):
        yield panel
        yield from panels(panel)


def metric_names(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    """Panel title -> the autoops_* metric names its targets' PromQL reads."""
    return {
        panel.get("title", f"panel {panel.get('id')}"): {
            name for target in panel.get("targets", []) for name in METRIC.findall(target.get("expr", ""))
        }
        for panel in panels(dashboard)
    }


def unexposed(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    return {
        title: names - set(SERIES) for title, names in metric_names(dashboard).items() if names - set(SERIES)
    }


def exposition(metrics: BuildMetrics) -> set[str]:
    text = generate_latest(metrics.registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_every_dashboard_panel_reads_only_series_the_monitor_exposes(dashboard: dict[str, Any]) -> None:
    names = metric_names(dashboard)
    assert names, "the dashboard has no panels"
    assert all(names.values()), f"a panel reads no autoops series: {names}"
    assert unexposed(dashboard) == {}


def test_a_panel_naming_a_series_the_monitor_does_not_expose_is_caught() -> None:
    bad = {
        "panels": [
            {
                "type": "row",
                "panels": [
                    {
                        "title": "bare histogram",
                        "targets": [{"expr": "rate(autoops_build_duration_seconds[5m])"}],
                    }
                ],
            }
        ]
    }
    assert unexposed(bad) == {"bare histogram": {"autoops_build_duration_seconds"}}


def test_the_dashboard_draws_the_four_views_from_the_contract(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(t["expr"] for p in panels(dashboard) for t in p.get("targets", []))
    assert "rate(autoops_builds_total" in exprs
    assert "by (error_class)" in exprs
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.95," in exprs
    assert "autoops_build_duration_seconds_bucket" in exprs
    assert "autoops_optimizer_confidence" in exprs
    assert dashboard["schemaVersion"] >= 36
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"


def test_every_listed_series_is_in_the_exposition_from_the_first_scrape() -> None:
    assert set(SERIES) <= exposition(BuildMetrics())


def test_builds_are_counted_by_status_and_error_class() -> None:
    metrics = BuildMetrics()
    metrics.observe(BuildResult(status="success", duration=12.0))
    metrics.observe(BuildResult(status="failed", duration=3.0, error="oom", error_class="oom"))
    metrics.observe(BuildResult(status="failed", duration=4.0, error="oom", error_class="oom"))
    metrics.observe(BuildResult(status="failed", duration=5.0, error="something odd"))
    metrics.set_confidence(0.75)

    get = metrics.registry.get_sample_value
    assert get("autoops_builds_total", {"status": "success", "error_class": "none"}) == 1
    assert get("autoops_builds_total", {"status": "failed", "error_class": "oom"}) == 2
    assert get("autoops_builds_total", {"status": "failed", "error_class": "unknown"}) == 1
    assert get("autoops_builds_total", {"status": "failed", "error_class": "timeout"}) == 0
    assert get("autoops_build_duration_seconds_count", {"status": "failed"}) == 3
    assert get("autoops_build_duration_seconds_sum", {"status": "failed"}) == 12.0
    assert get("autoops_build_duration_seconds_bucket", {"status": "success", "le": "10.0"}) == 0
    assert get("autoops_build_duration_seconds_bucket", {"status": "success", "le": "30.0"}) == 1
    assert get("autoops_optimizer_confidence") == 0.75


def test_two_monitors_do_not_share_counters() -> None:
    first, second = BuildMetrics(), BuildMetrics()
    first.observe(BuildResult(status="success", duration=1.0))
    labels = {"status": "success", "error_class": "none"}
    assert first.registry.get_sample_value("autoops_builds_total", labels) == 1
    assert second.registry.get_sample_value("autoops_builds_total", labels) == 0


@pytest.mark.parametrize("confidence", [-0.1, 1.5, float("nan")])
def test_a_confidence_that_is_not_a_probability_is_refused(confidence: float) -> None:
    with pytest.raises(InvalidInput):
        BuildMetrics().set_confidence(confidence)


def test_the_prometheus_config_scrapes_metrics_of_both_services_every_15s() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert config["global"]["scrape_interval"] == "15s"
    jobs = config["scrape_configs"]
    assert jobs
    for job in jobs:
        assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for job in jobs for group in job["static_configs"] for t in group["targets"]}
    assert "opslab:8000" in targets
    assert any(t.endswith(":9000") for t in targets)
