"""The build monitor's Prometheus series (docs/autoops-contract.md): what Prometheus scrapes from
``/metrics`` and what the Grafana dashboard in ``deploy/grafana/`` draws.

    autoops_builds_total{status, error_class}       counter; error_class "none" on success
    autoops_build_duration_seconds{status}          histogram, 1 s .. 30 min builds
    autoops_optimizer_confidence                    gauge, the last choice's P(best arm)

``BuildMetrics`` owns its registry (a fresh one by default) so that two apps in one process, or two
tests, never share counters; the service exposes ``BuildMetrics.registry`` on its ``/metrics``.
"""

from __future__ import annotations

import math
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from opslab.autoops.model import ERROR_CLASSES, BuildResult
from opslab.errors import InvalidInput

BUILDS: Final = "autoops_builds_total"
DURATION: Final = "autoops_build_duration_seconds"
CONFIDENCE: Final = "autoops_optimizer_confidence"

# Every name as it appears in the exposition and in PromQL (a histogram is its three suffixed series).
SERIES: Final[tuple[str, ...]] = (
    BUILDS,
    f"{DURATION}_bucket",
    f"{DURATION}_sum",
    f"{DURATION}_count",
    CONFIDENCE,
)

# error_class of a failed build the simulator or a CI could not classify: a label, never a missing series.
UNCLASSIFIED: Final = "unknown"
SUCCESS_CLASS: Final = "none"

# Builds run from a second (a cached no-op) to half an hour (a cold monorepo); le=3600 catches overruns.
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    3600.0,
)


class BuildMetrics:
    """Counts finished builds, times them and shows the optimizer's confidence, in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        # prometheus_client appends "_total" to a counter's name itself.
        self.builds = Counter(
            BUILDS.removesuffix("_total"),
            "Finished builds by status and failure class.",
            ["status", "error_class"],
            registry=self.registry,
        )
        self.duration = Histogram(
            DURATION,
            "Build wall time in seconds, by status.",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.confidence = Gauge(
            CONFIDENCE,
            "Posterior probability that the optimizer's last chosen action is the best one.",
            registry=self.registry,
        )
        # Every series exists at 0 from the first scrape: rate() and "share of failures" need a baseline,
        # and a dashboard panel with no series reads as "broken", not as "no failures yet".
        self.builds.labels(status="success", error_class=SUCCESS_CLASS)
        for error_class in (*ERROR_CLASSES, UNCLASSIFIED):
            self.builds.labels(status="failed", error_class=error_class)
        for status in ("success", "failed"):
            self.duration.labels(status=status)

    def observe(self, result: BuildResult) -> None:
        """Count one finished build and record its duration."""
        error_class = SUCCESS_CLASS if result.status == "success" else result.error_class or UNCLASSIFIED
        self.builds.labels(status=result.status, error_class=error_class).inc()
        self.duration.labels(status=result.status).observe(result.duration)

    def set_confidence(self, confidence: float) -> None:
        """The optimizer's confidence in its last choice, a probability."""
        if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
            raise InvalidInput(
                f"confidence must be a probability in [0, 1], got {confidence!r}",
                details={"confidence": confidence},
            )
        self.confidence.set(confidence)
