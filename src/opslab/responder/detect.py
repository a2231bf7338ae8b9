"""Detection: is the target unwell, for long enough, and with enough agreement, to open an incident?

The baseline is robust: the median and the MAD (median absolute deviation) of the last healthy polls,
so one slow poll cannot drag it up and an incident's polls never enter it; a missing reading (``None``)
enters nothing. Signals are independent, each measured against an absolute bound or the baseline:

* error rate >= ``error_rate_threshold`` %, or far above the baseline's;
* p95 latency > max(factor x baseline, baseline + margin) (an absolute bound until a baseline exists);
* pool_health critical, or the health check's database check failing;
* health unhealthy; a failing dependency, memory or disk check;
* the health call refused (``unreachable``: nothing listens) or unanswered (``unresponsive``; ``hung``
  when the action server says the process is stopped);
* memory above ``memory_ratio`` of its limit, or RSS of the same process growing fast;
* the host's available memory under its floor (another process presses on it).

What a busy host explains is set aside, not signalled: slow answers (or none in time) while every core
is busy, the process is alive and running, and nothing about the service changed (version, flags) are
the host's doing, and nothing the responder could do would help (``Assessment.explained``). So is what
an experiment in progress on the target explains (a canary holding it, or one the target announces):
its load, its flags and the memory they take are the experiment's, and the experiment judges them —
every soft signal (latency, errors under the absolute threshold, memory growing but under its limit)
is reported against it. Hard ones (gone, hung, failing checks, memory at its limit, errors over the
threshold, the pool critical) are never explained away. The memory trend skips polls taken during an
experiment, so growth it caused is not read as a leak after it ends.

Request rate is never a signal. One bad poll is not an incident either: ``consecutive`` anomalous polls
in a row are, and they must agree (share a signal); latency or silence alone needs one poll more.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from opslab.responder.config import ResponderConfig
from opslab.responder.model import Assessment, Signal
from opslab.responder.observation import Observation
from opslab.responder.settled import Settled

_MIN_TREND_POINTS = 3
WEAK: frozenset[Signal] = frozenset({"latency", "unresponsive"})
_CHECK_SIGNALS: dict[str, Signal] = {
    "database": "pool",
    "memory": "memory",
    "dependency": "dependency",
    "disk": "disk",
}


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
    dependency_latency_ms: Stat | None = None
    version: str | None = None
    flags: dict[str, bool] = Field(default_factory=dict)


def robust(values: Sequence[float | None]) -> Stat | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    med = statistics.median(present)
    return Stat(median=med, mad=statistics.median(abs(v - med) for v in present))


def slope_per_min(points: Sequence[Observation], attr: str = "memory_rss_mb") -> float | None:
    """Least-squares slope of ``attr`` over time, per minute, over the polls that have the reading and
    come from the same process as the last one (a restart starts a new trend); None with too few."""
    if points and points[-1].pid is not None:
        last_pid = points[-1].pid
        points = [p for p in points if p.pid in (last_pid, None)]
    points = [p for p in points if getattr(p, attr) is not None]
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


@dataclass
class Findings:
    signals: list[Signal] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)
    hard: bool = False  # a signal no load or experiment explains

    def flag(self, signal: Signal, reason: str, *, hard: bool = False) -> None:
        if signal not in self.signals:
            self.signals.append(signal)
        self.reasons.append(reason)
        self.hard = self.hard or hard


def changed_since(obs: Observation, baseline: Baseline) -> list[str]:
    """What about the service changed since the baseline: its version, its flags."""
    changes = []
    if baseline.version and obs.version and obs.version != baseline.version:
        changes.append(f"version {baseline.version} -> {obs.version}")
    changes += [
        f"flag {n} {'on' if on else 'off'}" for n, on in obs.flags.items() if baseline.flags.get(n, on) != on
    ]
    return changes


def dependency_slow(obs: Observation, baseline: Baseline) -> bool:
    """The dependency's round trip far above its baseline: the path to it, not this host's CPU."""
    dep, base = obs.dependency_latency_ms, baseline.dependency_latency_ms
    return dep is not None and base is not None and dep > max(3 * base.median, base.median + 100)


def memory_floor_mb(obs: Observation, config: ResponderConfig) -> float | None:
    if config.host_memory_floor_mb is not None:
        return config.host_memory_floor_mb
    total = obs.host_mem_total_mb
    return max(256.0, 0.05 * total) if total else None


def examine(
    obs: Observation, baseline: Baseline, config: ResponderConfig, recent: Sequence[Observation] = ()
) -> Findings:
    """The signals ``obs`` raises against ``baseline``, and what a busy host explains (pure)."""
    f = Findings()
    if obs.reachability == "refused":
        f.flag(
            "unreachable",
            f"target refuses connections ({'; '.join(obs.errors[:1]) or 'no answer'})",
            hard=True,
        )
        return f
    if not obs.answered:
        live = obs.liveness
        if live is not None and live.state == "stopped":
            f.flag("hung", f"target does not answer and its process {live.pid} is stopped", hard=True)
        elif live is not None and live.alive is False:
            f.flag(
                "unreachable", f"target does not answer and its process is {live.state or 'gone'}", hard=True
            )
        else:
            f.flag("unresponsive", f"target did not answer its health check ({obs.reachability})")
        if not _during_experiment(f, obs):
            _explain(f, obs, baseline)
        return f
    if obs.health_status == "unhealthy":
        f.flag("health", "health status unhealthy", hard=True)
    enough = baseline.samples >= config.min_baseline
    err, err_base = obs.error_rate, baseline.error_rate if enough else None
    if err is not None and err >= config.error_rate_threshold:
        f.flag("error_rate", f"error rate {err:.1f}% >= {config.error_rate_threshold:.1f}%", hard=True)
    elif err is not None and err_base is not None:
        bound = err_base.median + max(config.error_rate_margin, 6 * err_base.mad)
        if err > bound:
            f.flag("error_rate", f"error rate {err:.1f}% far above baseline {err_base.median:.1f}%")
    p95, lat = obs.latency_p95_ms, baseline.latency_p95_ms if enough else None
    if p95 is not None and lat is not None:
        bound = max(config.latency_factor * lat.median, lat.median + config.latency_margin_ms)
        if p95 > bound:
            f.flag("latency", f"p95 {p95:.0f} ms > {bound:.0f} ms (baseline {lat.median:.0f} ms)")
    elif p95 is not None and p95 > config.latency_absolute_ms:
        f.flag("latency", f"p95 {p95:.0f} ms > {config.latency_absolute_ms:.0f} ms")
    if obs.pool is not None and obs.pool.pool_health == "critical":
        f.flag("pool", f"pool critical (utilization {obs.pool.utilization:.0%})", hard=True)
    for name, c in obs.checks.items():
        if not c.ok:
            f.flag(_CHECK_SIGNALS.get(name, "health"), f"health check {name} failing: {c.detail}", hard=True)
    rss, limit = obs.memory_rss_mb, obs.memory_limit_mb
    if rss is not None and limit and rss >= config.memory_ratio * limit:
        f.flag("memory", f"memory {rss:.0f} MB of {limit:.0f} MB", hard=True)
    # The trend of the service's own memory: polls taken during an experiment measure the experiment.
    growth = None if obs.experiments else slope_per_min([p for p in (*recent, obs) if not p.experiments])
    if growth is not None and growth > config.memory_growth_mb_per_min:
        f.flag("memory", f"memory growing {growth:.0f} MB/min")
    floor, avail = memory_floor_mb(obs, config), obs.host_mem_available_mb
    if floor is not None and avail is not None and avail < floor:
        f.flag("host_memory", f"host memory available {avail:.0f} MB < {floor:.0f} MB", hard=True)
    if not _during_experiment(f, obs):
        _explain(f, obs, baseline)
    return f


def _during_experiment(f: Findings, obs: Observation) -> bool:
    """Soft signals while an experiment holds the target: reported against it, not acted on."""
    if not f.signals or not obs.experiments or f.hard:
        return False
    during = "; ".join(obs.experiments)
    f.explained = [
        f"{r}: during {during}, whose load and flags it is; reported to it, not acting" for r in f.reasons
    ]
    f.signals, f.reasons = [], []
    return True


def _explain(f: Findings, obs: Observation, baseline: Baseline) -> None:
    """Slow or silent on a busy host, the process alive and running, nothing changed: the host's doing."""
    if not f.signals or not set(f.signals) <= WEAK or not obs.host_busy():
        return
    live = obs.liveness
    if live is not None and (live.alive is False or live.state == "stopped"):
        return
    if changed_since(obs, baseline) or dependency_slow(obs, baseline):
        return
    cpu = (
        obs.host_cpu_busy_pct
        if obs.host_cpu_busy_pct is not None
        else live.host_cpu_busy_pct
        if live
        else None
    )
    load = obs.host_load1 if obs.host_load1 is not None else live.host_load1 if live else None
    cpus = obs.host_cpus or (live.host_cpus if live else None)
    why = f"host busy (CPU {_or(cpu)}%, load {_or(load)} on {_or(cpus)} cores)"
    f.explained = [f"{r}: {why}; nothing changed in the service, not acting" for r in f.reasons]
    f.signals, f.reasons = [], []


def _or(value: object) -> str:
    return "?" if value is None else str(value)


def check(
    obs: Observation, baseline: Baseline, config: ResponderConfig, recent: Sequence[Observation] = ()
) -> tuple[list[Signal], list[str]]:
    """The signals ``obs`` raises against ``baseline`` (pure: the verifier calls it too)."""
    found = examine(obs, baseline, config, recent)
    return found.signals, found.reasons


class Detector:
    """Stateful over polls: the healthy window behind the baseline and the streak of bad polls that agree."""

    def __init__(self, config: ResponderConfig) -> None:
        self.config = config
        self._healthy: deque[Observation] = deque(maxlen=config.baseline_polls)
        self._recent: deque[Observation] = deque(maxlen=max(_MIN_TREND_POINTS + 3, 8))
        self._consecutive = 0
        self._agreed: set[Signal] = set()
        self._settled = Settled(config.settle_polls)

    @property
    def consecutive(self) -> int:
        return self._consecutive

    def assess(self, obs: Observation) -> Assessment:
        found = examine(obs, self.baseline(), self.config, list(self._recent))
        self._recent.append(obs)
        if found.signals:
            shared = self._agreed & set(found.signals)
            # A streak is one problem seen again: polls that share no signal start a new streak.
            self._consecutive = self._consecutive + 1 if shared or not self._consecutive else 1
            self._agreed = shared or set(found.signals)
        else:
            self._consecutive, self._agreed = 0, set()
            if not found.explained and obs.answered:
                self._healthy.append(obs)
        if obs.answered:
            self._settled.see(obs, healthy=not found.signals and not found.explained)
        needed = self.config.consecutive + (1 if self._agreed <= WEAK else 0)
        return Assessment(
            signals=found.signals,
            reasons=found.reasons,
            explained=found.explained,
            consecutive=self._consecutive,
            is_incident=bool(found.signals) and self._consecutive >= needed,
            hard=found.hard and bool(found.signals),
        )

    def reset(self) -> None:
        """After an incident is opened: the next one needs its own ``consecutive`` bad polls."""
        self._consecutive, self._agreed = 0, set()

    def baseline(self) -> Baseline:
        polls = list(self._healthy)
        if not polls:
            return Baseline()
        settled = self._settled
        return Baseline(
            samples=len(polls),
            error_rate=robust([p.error_rate for p in polls]),
            latency_p95_ms=robust([p.latency_p95_ms for p in polls]),
            memory_rss_mb=robust([p.memory_rss_mb for p in polls]),
            request_rate=robust([p.request_rate for p in polls]),
            dependency_latency_ms=robust([p.dependency_latency_ms for p in polls]),
            version=settled.version,
            flags=dict(settled.flags),
        )
