"""The plan's ``metrics``: where ΔP95, the error rate and throughput come from (our load generator, or
PromQL through Prometheus's HTTP API, the Kayenta / Argo Rollouts way) and the extra metrics judged
alongside them.

A PromQL template is evaluated once per ABAB window, at the window's end, and may use ``{{range}}`` (the
window's counted span, ``"37s"``), ``{{start}}`` / ``{{end}}`` (Unix seconds), ``{{arm}}`` (``A`` | ``B``)
and ``{{selector}}`` (the arm's label matchers, when the service labels its arms)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from opslab.canary.strict import Strict, check_env_refs

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
PLACEHOLDERS = ("range", "start", "end", "arm", "selector")
Stat = Literal["p50", "p90", "p95", "p99", "mean", "max", "error_rate", "throughput"]


def check_template(value: str) -> str:
    unknown = sorted({m for m in PLACEHOLDER.findall(value) if m not in PLACEHOLDERS})
    if unknown:
        raise ValueError(f"unknown placeholder {{{{{unknown[0]}}}}}; use one of {', '.join(PLACEHOLDERS)}")
    if not value.strip():
        raise ValueError("an empty query")
    return value


Query = Annotated[str, AfterValidator(check_template)]


class PrometheusSpec(Strict):
    url: Annotated[str, AfterValidator(check_env_refs)] = Field(description="Prometheus's base URL.")
    p95_ms: Query | None = Field(default=None, description="The window's p95 latency in milliseconds.")
    error_rate_pct: Query | None = Field(default=None, description="The window's error rate in percent.")
    throughput_qps: Query | None = Field(default=None, description="The window's requests per second.")
    selector: dict[Literal["A", "B"], str] = Field(
        default_factory=dict, description="Label matchers telling A from B ({{selector}}), if any."
    )
    settle_sec: float = Field(
        default=2.0, ge=0, le=300, description="Wait after a window so its last scrape lands."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=300)


class CustomMetric(Strict):
    """An extra metric judged B against A: worse by more than ``fail_worse_by`` is a FAIL (the canary's,
    when ``critical``), by more than ``edge_worse_by`` an EDGE; "worse" is relative (percent of A) or
    absolute (in the metric's own units: right for error rates, where A is often 0)."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    query: Query | None = Field(default=None, description="PromQL, per window (needs metrics.prometheus).")
    stat: Stat | None = Field(default=None, description="A statistic of the load generator's requests.")
    direction: Literal["lower", "higher"] = Field(default="lower", description="Which way is better.")
    compare: Literal["relative", "absolute"] = "relative"
    fail_worse_by: float = Field(ge=0, le=1e9)
    edge_worse_by: float | None = Field(default=None, ge=0, le=1e9)
    critical: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> CustomMetric:
        if (self.query is None) == (self.stat is None):
            raise ValueError("give exactly one of query (PromQL) or stat (a load generator statistic)")
        if self.edge_worse_by is not None and self.edge_worse_by > self.fail_worse_by:
            raise ValueError("edge_worse_by must not be above fail_worse_by")
        return self


class MetricsSpec(Strict):
    source: Literal["load", "prometheus"] = Field(
        default="load", description="Where ΔP95, the error rate and ΔQPS come from."
    )
    prometheus: PrometheusSpec | None = None
    load: bool = Field(
        default=True, description="Send our own open-loop load (false: the service's own traffic only)."
    )
    custom: list[CustomMetric] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _consistent(self) -> MetricsSpec:
        prom = self.prometheus
        if self.source == "prometheus":
            if prom is None:
                raise ValueError("source: prometheus needs metrics.prometheus (url and queries)")
            missing = [q for q in ("p95_ms", "error_rate_pct") if getattr(prom, q) is None]
            if missing:
                raise ValueError(f"source: prometheus needs metrics.prometheus.{missing[0]}")
        elif not self.load:
            raise ValueError("load: false needs source: prometheus (nothing else would measure)")
        if prom is None and any(m.query for m in self.custom):
            raise ValueError("a custom metric with a query needs metrics.prometheus.url")
        if not self.load and any(m.stat for m in self.custom):
            raise ValueError("a custom metric with a stat needs the load generator (load: true)")
        names = [m.name for m in self.custom]
        if len(set(names)) != len(names):
            raise ValueError("custom metric names must be unique")
        return self
