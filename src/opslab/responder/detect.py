"""Detection: is the target unwell, and for long enough to open an incident?

The baseline is robust: the median and the MAD (median absolute deviation) of the last healthy polls,
so one slow poll cannot drag it up and an incident's polls never enter it. Signals are independent
(any one is an anomaly), each measured against an absolute bound or against the baseline:

* error rate >= ``error_rate_threshold`` %, or far above the baseline's;
* p95 latency > max(factor x baseline, baseline + margin) (an absolute bound until a baseline exists);
* pool_health critical, or the health check's database check failing;
* health unhealthy or unreachable; a failing dependency check;
* memory above ``memory_ratio`` of its limit, a failing memory check, or RSS growing fast.

Request rate is never a signal: more load with healthy answers is a good day, not an incident. One bad
poll is not an incident either: ``consecutive`` anomalous polls in a row are.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence

from pydantic import BaseModel, Field

from opslab.responder.config import ResponderConfig
from opslab.responder.model import Assessment, Observation, Signal

_MIN_TREND_POINTS = 3


class Stat(BaseModel):
    median: float
    mad: float


class Baseline(BaseModel):
    """What "normal" looked like over the last healthy polls (JSON: it lives in the workflow state)."""

    samples: int = 0
    error_rate: Stat | None = None
    latency_p95_ms: Stat | None = None
    memory_rss_mb: Stat | None = None
    request_rate: Stat | None = None
    version: str | None = None
    flags: dict[str, bool] = Field(default_factory=dict)


def robust(values: Sequence[float]) -> Stat | None:
    if not values:
        return None
    med = statistics.median(values)
    return Stat(median=med, mad=statistics.median(abs(v - med) for v in values))


def slope_per_min(points: Sequence[Observation], attr: str = "memory_rss_mb") -> float | None:
    """Least-squares slope of ``attr`` over time, per minute; None with too few points or no time span."""
    if len(points) < _MIN_TREND_POINTS:
        return None
    t0 = points[0].timestamp
    xs = [(p.timestamp - t0).total_seconds() / 60.0 for p in points]
    ys = [float(getattr(p, attr)) for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var <= 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def check(
    obs: Observation, baseline: Baseline, config: ResponderConfig, recent: Sequence[Observation] = ()
) -> tuple[list[Signal], list[str]]:
    """The signals ``obs`` raises against ``baseline`` (pure: the verifier calls it too)."""
    signals: list[Signal] = []
    reasons: list[str] = []

    def flag(signal: Signal, reason: str) -> None:
        if signal not in signals:
            signals.append(signal)
        reasons.append(reason)

    if obs.health_status == "unreachable":
        flag("unreachable", f"target unreachable ({'; '.join(obs.errors[:2]) or 'no answer'})")
        return signals, reasons
    if obs.health_status == "unhealthy":
        flag("health", "health status unhealthy")
    enough = baseline.samples >= config.min_baseline
    err_base = baseline.error_rate if enough else None
    if obs.error_rate >= config.error_rate_threshold:
        flag("error_rate", f"error rate {obs.error_rate:.1f}% >= {config.error_rate_threshold:.1f}%")
    elif err_base is not None:
        bound = err_base.median + max(config.error_rate_margin, 6 * err_base.mad)
        if obs.error_rate > bound:
            flag("error_rate", f"error rate {obs.error_rate:.1f}% far above baseline {err_base.median:.1f}%")
    lat = baseline.latency_p95_ms if enough else None
    if lat is not None:
        bound = max(config.latency_factor * lat.median, lat.median + config.latency_margin_ms)
        if obs.latency_p95_ms > bound:
            flag(
                "latency", f"p95 {obs.latency_p95_ms:.0f} ms > {bound:.0f} ms (baseline {lat.median:.0f} ms)"
            )
    elif obs.latency_p95_ms > config.latency_absolute_ms:
        flag("latency", f"p95 {obs.latency_p95_ms:.0f} ms > {config.latency_absolute_ms:.0f} ms")
    if obs.pool is not None and obs.pool.pool_health == "critical":
        flag("pool", f"pool critical (utilization {obs.pool.utilization:.0%})")
    for name, c in obs.checks.items():
        if c.ok:
            continue
        signal: Signal = {"database": "pool", "memory": "memory", "dependency": "dependency"}.get(
            name, "health"
        )  # type: ignore[assignment]
        flag(signal, f"health check {name} failing: {c.detail}")
    if obs.memory_limit_mb and obs.memory_rss_mb >= config.memory_ratio * obs.memory_limit_mb:
        flag("memory", f"memory {obs.memory_rss_mb:.0f} MB of {obs.memory_limit_mb:.0f} MB")
    growth = slope_per_min([*recent, obs])
    if growth is not None and growth > config.memory_growth_mb_per_min:
        flag("memory", f"memory growing {growth:.0f} MB/min")
    return signals, reasons


class Detector:
    """Stateful over polls: the healthy window behind the baseline and the count of bad polls in a row."""

    def __init__(self, config: ResponderConfig) -> None:
        self.config = config
        self._healthy: deque[Observation] = deque(maxlen=config.baseline_polls)
        self._recent: deque[Observation] = deque(maxlen=max(_MIN_TREND_POINTS + 2, 6))
        self._consecutive = 0

    @property
    def consecutive(self) -> int:
        return self._consecutive

    def assess(self, obs: Observation) -> Assessment:
        signals, reasons = check(obs, self.baseline(), self.config, list(self._recent))
        self._recent.append(obs)
        if signals:
            self._consecutive += 1
        else:
            self._consecutive = 0
            self._healthy.append(obs)
        return Assessment(
            signals=signals,
            reasons=reasons,
            consecutive=self._consecutive,
            is_incident=self._consecutive >= self.config.consecutive,
        )

    def reset(self) -> None:
        """After an incident is opened: the next one needs its own ``consecutive`` bad polls."""
        self._consecutive = 0

    def baseline(self) -> Baseline:
        polls = list(self._healthy)
        if not polls:
            return Baseline()
        last = polls[-1]
        return Baseline(
            samples=len(polls),
            error_rate=robust([p.error_rate for p in polls]),
            latency_p95_ms=robust([p.latency_p95_ms for p in polls]),
            memory_rss_mb=robust([p.memory_rss_mb for p in polls]),
            request_rate=robust([p.request_rate for p in polls]),
            version=last.version,
            flags=dict(last.flags),
        )
