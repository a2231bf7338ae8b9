"""The build monitor's Prometheus series (docs/autoops-contract.md): what Prometheus scrapes from
``/metrics`` and what the Grafana dashboard in ``deploy/grafana/`` draws.

    autoops_builds_total{status, error_class}       counter; error_class "none" on success
    autoops_build_duration_seconds{status}          histogram, 1 s .. 30 min builds
    autoops_optimizer_confidence                    gauge, P(best) of its best configuration for a default
                                                    pipeline: what `opslab autoops status` prints

They are read when Prometheus scrapes, from ``BuildFigures``: in the service, the shared store
(``StoreFigures``: the build log and the optimizer's saved state in the database), so every replica and
every process reports every build, as ``opslab autoops status`` does, not only the builds it ran itself.
A ``BuildMetrics`` that nothing attached a store to reports what it observed itself (tests, a process
without a database). It owns its registry (a fresh one by default) so that two apps in one process, or two
tests, never share series; the service exposes ``BuildMetrics.registry`` on its ``/metrics``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from opslab.autoops.model import ERROR_CLASSES, BuildContext, BuildResult, BuildStatus
from opslab.autoops.optimizer import Choice
from opslab.autoops.selection import Optimizer
from opslab.errors import InvalidInput

log = logging.getLogger("opslab.autoops")

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
STATUSES: Final[tuple[BuildStatus, ...]] = ("success", "failed")

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


@dataclass(frozen=True)
class BuildGroup:
    """The builds of one status and error class (``None``: unclassified, or a success) and their durations:
    ``within[i]`` of them took at most ``bounds[i]`` seconds, for the bounds the tally was asked for."""

    status: BuildStatus
    error_class: str | None
    count: int
    duration_sum: float
    within: tuple[int, ...]


class Tallies(Protocol):
    """The build log's side: every build kept, grouped (``BuildLog.tally``)."""

    def tally(self, bounds: Sequence[float]) -> list[BuildGroup]: ...


class BuildFigures(Protocol):
    """What the series report, read at scrape time."""

    def tally(self) -> list[BuildGroup]: ...

    def confidence(self) -> float: ...


class StoreFigures:
    """The figures of the shared store: the build log's tally, and the confidence of the optimizer as it is
    saved now (another process may have learned since this one loaded it) for a default pipeline."""

    def __init__(self, builds: Tallies, optimizer: Optimizer) -> None:
        self.builds, self.optimizer = builds, optimizer

    def tally(self) -> list[BuildGroup]:
        return self.builds.tally(DURATION_BUCKETS)

    def best(self) -> Choice:
        """The optimizer's best configuration for a default pipeline, from its saved state, sampled as a new
        process samples it: `opslab autoops status` and ``/metrics`` answer the same."""
        return self.optimizer.reloaded().best(BuildContext())

    def confidence(self) -> float:
        return self.best().confidence


class ObservedBuilds:
    """The figures of the builds one ``BuildMetrics`` was shown, and the last confidence it was given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[tuple[BuildStatus, str | None], tuple[int, float, list[int]]] = {}
        self._confidence = 0.0

    def observe(self, result: BuildResult) -> None:
        key = (result.status, None if result.status == "success" else result.error_class)
        with self._lock:
            count, total, within = self._groups.get(key, (0, 0.0, [0] * len(DURATION_BUCKETS)))
            within = [n + (result.duration <= le) for n, le in zip(within, DURATION_BUCKETS, strict=True)]
            self._groups[key] = (count + 1, total + result.duration, within)

    def set_confidence(self, confidence: float) -> None:
        self._confidence = confidence

    def tally(self) -> list[BuildGroup]:
        with self._lock:
            return [
                BuildGroup(status, error_class, count, total, tuple(within))
                for (status, error_class), (count, total, within) in self._groups.items()
            ]

    def confidence(self) -> float:
        return self._confidence


class BuildMetrics:
    """The three series in one registry, read from ``figures`` at every scrape."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._observed = ObservedBuilds()
        self.figures: BuildFigures = self._observed
        self.registry.register(_Series(self))

    def attach(self, figures: BuildFigures) -> None:
        """Report ``figures`` (the shared store) from now on, instead of what this object observed."""
        self.figures = figures

    def observe(self, result: BuildResult) -> None:
        """Count one finished build and its duration (reported until a store is attached)."""
        self._observed.observe(result)

    def set_confidence(self, confidence: float) -> None:
        """The optimizer's confidence, a probability (reported until a store is attached)."""
        if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
            raise InvalidInput(
                f"confidence must be a probability in [0, 1], got {confidence!r}",
                details={"confidence": confidence},
            )
        self._observed.set_confidence(confidence)


class _Series:
    """A Prometheus collector: the three families, computed from the figures when scraped."""

    def __init__(self, metrics: BuildMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        # The names, for the registry's duplicate check, without reading the store.
        return iter(_families([], 0.0))

    def collect(self) -> Iterator[Metric]:
        try:
            groups, confidence = self.metrics.figures.tally(), self.metrics.figures.confidence()
        except Exception as exc:  # noqa: BLE001 - the rest of /metrics answers when the store does not
            log.warning("autoops series not read: %s", exc)
            return iter(())
        return iter(_families(groups, confidence))


@dataclass
class _Durations:
    count: int = 0
    total: float = 0.0
    within: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))

    def add(self, group: BuildGroup) -> None:
        self.count += group.count
        self.total += group.duration_sum
        self.within = [a + b for a, b in zip(self.within, group.within, strict=True)]


def _families(groups: Sequence[BuildGroup], confidence: float) -> list[Metric]:
    # Every series exists at 0 from the first scrape: rate() and "share of failures" need a baseline,
    # and a dashboard panel with no series reads as "broken", not as "no failures yet".
    counts: dict[tuple[str, str], int] = {("success", SUCCESS_CLASS): 0}
    counts.update({("failed", c): 0 for c in (*ERROR_CLASSES, UNCLASSIFIED)})
    durations = {status: _Durations() for status in STATUSES}
    for g in groups:
        label = SUCCESS_CLASS if g.status == "success" else g.error_class or UNCLASSIFIED
        counts[(g.status, label)] = counts.get((g.status, label), 0) + g.count
        durations[g.status].add(g)
    # prometheus_client appends "_total" to a counter family's name itself.
    builds = CounterMetricFamily(
        BUILDS.removesuffix("_total"),
        "Finished builds by status and failure class.",
        labels=["status", "error_class"],
    )
    for (status, error_class), n in sorted(counts.items()):
        builds.add_metric([status, error_class], n)
    histogram = HistogramMetricFamily(DURATION, "Build wall time in seconds, by status.", labels=["status"])
    for status, d in durations.items():
        buckets = [(repr(float(le)), float(n)) for le, n in zip(DURATION_BUCKETS, d.within, strict=True)]
        histogram.add_metric([status], [*buckets, ("+Inf", float(d.count))], sum_value=d.total)
    gauge = GaugeMetricFamily(
        CONFIDENCE,
        "Posterior probability that the optimizer's best configuration for a default pipeline is the best.",
        value=confidence,
    )
    return [builds, histogram, gauge]
