"""A simulated CI runner: a fleet of pipelines (a few archetypes with noise) whose builds fail for causes
that depend on the build's configuration and the pipeline's context.

Each cause has an analytic survival probability; a build succeeds when every cause survives, so
``success_probability`` is their product and ``run`` draws exactly that. The causes, in the order a
build meets them:

- ``image_pull``: registry blips, a few % for a floating tag, ~0.5 % for a pinned digest;
- ``dependency_resolution``: grows with churn; a cache helps at low churn, but at high churn the cached
  (stale) lockfile conflicts with the new versions, so caching makes it *worse*;
- ``oom``: peak memory grows with repo size and parallelism, the cache lowers it; compared to the runner;
- ``timeout``: the wall-clock estimate (larger repos, no cache, little parallelism, retried flaky runs)
  against the job limit, under log-normal noise;
- ``flaky_test``: a flaky share of the tests fails a run; each retry gives it another chance.

Two seeded streams (``numpy.random.SeedSequence(seed).spawn(2)``): one draws contexts, one draws builds,
so the stream of pipelines does not depend on how the builds went.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from opslab.autoops.model import ERROR_TEXTS, BuildConfig, BuildContext, BuildResult, ErrorClass

TIMEOUT_S = 2_700.0  # the job's wall-clock limit (45 min)
_DURATION_SIGMA = 0.3  # log-normal spread of a build's duration
_CAUSES: tuple[ErrorClass, ...] = ("image_pull", "dependency_resolution", "oom", "timeout", "flaky_test")


@dataclass(frozen=True)
class Archetype:
    """A kind of pipeline: medians of its context, and how often the fleet holds one."""

    name: str
    weight: float
    repo_size_mb: float
    dependency_churn: float
    flaky_share: float


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("web-frontend", 0.25, repo_size_mb=300, dependency_churn=0.05, flaky_share=0.02),
    Archetype("monorepo", 0.20, repo_size_mb=25_000, dependency_churn=0.08, flaky_share=0.04),
    Archetype("renovate-service", 0.20, repo_size_mb=800, dependency_churn=0.65, flaky_share=0.01),
    Archetype("integration-suite", 0.15, repo_size_mb=1_500, dependency_churn=0.10, flaky_share=0.20),
    Archetype("ml-platform", 0.20, repo_size_mb=12_000, dependency_churn=0.60, flaky_share=0.02),
)


@dataclass(frozen=True)
class Pipeline:
    archetype: str
    repo_size_mb: float
    dependency_churn: float
    flaky_share: float


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _flaky_attempt(context: BuildContext) -> float:
    """Probability that one run of the suite hits a flaky failure."""
    return min(0.95, 1.5 * context.flaky_share)


def expected_duration(config: BuildConfig, context: BuildContext) -> float:
    """Median seconds of a build that does not fail early, retried flaky runs included."""
    size_gb = context.repo_size_mb / 1_000
    pull = 10.0 if config.pinned_image else 25.0
    deps = (15.0 if config.cache else 90.0) * (1 + 0.05 * size_gb)
    work = (180.0 + 90.0 * size_gb) * (0.55 if config.cache else 1.0) / config.parallelism**0.8
    q = _flaky_attempt(context)
    reruns = sum(q**i for i in range(1, config.retries + 1))  # expected extra runs of the suite
    return pull + deps + work * (1 + 0.5 * reruns)


def failure_probabilities(config: BuildConfig, context: BuildContext) -> dict[ErrorClass, float]:
    """Each cause's probability to fire, given that the build got that far."""
    churn = context.dependency_churn
    size_gb = context.repo_size_mb / 1_000
    # A cached lockfile helps while dependencies are stable and conflicts with the new ones once they churn.
    stale = 0.005 + 2.0 * max(0.0, churn - 0.2) ** 2
    dependency = stale if config.cache else 0.01 + 0.15 * churn**2
    peak_gb = (0.8 + 0.12 * config.parallelism * math.sqrt(size_gb)) * (0.75 if config.cache else 1.0)
    oom = 0.002 + 0.9 * _sigmoid((peak_gb / config.memory_gb - 1.0) / 0.08)
    z = math.log(TIMEOUT_S / expected_duration(config, context)) / _DURATION_SIGMA
    timeout = _normal_sf(z)
    flaky = _flaky_attempt(context) ** (config.retries + 1)
    return {
        "image_pull": 0.005 if config.pinned_image else 0.04,
        "dependency_resolution": min(0.95, dependency),
        "oom": min(0.95, oom),
        "timeout": timeout,
        "flaky_test": flaky,
    }


class BuildSimulator:
    """A seeded CI runner over a fleet of pipelines; same seed + same calls = same results."""

    def __init__(self, *, seed: int = 0, fleet_size: int = 16) -> None:
        context_seq, build_seq = np.random.SeedSequence(seed).spawn(2)
        self._contexts = np.random.default_rng(context_seq)
        self._builds = np.random.default_rng(build_seq)
        weights = np.array([a.weight for a in ARCHETYPES])
        kinds = self._contexts.choice(len(ARCHETYPES), size=fleet_size, p=weights / weights.sum())
        self.fleet: tuple[Pipeline, ...] = tuple(self._pipeline(ARCHETYPES[int(k)]) for k in kinds)
        self._last_error: list[ErrorClass | None] = [None] * fleet_size
        self._pending: tuple[int, BuildContext] | None = None

    def _pipeline(self, kind: Archetype) -> Pipeline:
        rng = self._contexts
        return Pipeline(
            archetype=kind.name,
            repo_size_mb=float(min(100_000.0, kind.repo_size_mb * rng.lognormal(0.0, 0.3))),
            dependency_churn=float(np.clip(kind.dependency_churn * rng.lognormal(0.0, 0.2), 0.0, 0.95)),
            flaky_share=float(np.clip(kind.flaky_share * rng.lognormal(0.0, 0.3), 0.0, 0.6)),
        )

    def sample_context(self) -> BuildContext:
        """The next build's pipeline, with this build's churn, and the error its previous build had."""
        rng = self._contexts
        index = int(rng.integers(len(self.fleet)))
        pipeline = self.fleet[index]
        mean = pipeline.dependency_churn
        # Churn varies from build to build around the pipeline's mean (a Beta with 20 pseudo-counts).
        churn = float(rng.beta(1 + 20 * mean, 1 + 20 * (1 - mean)))
        context = BuildContext(
            repo_size_mb=round(pipeline.repo_size_mb, 1),
            dependency_churn=round(churn, 4),
            flaky_share=round(pipeline.flaky_share, 4),
            last_error_class=self._last_error[index],
        )
        self._pending = (index, context)
        return context

    def success_probability(self, config: BuildConfig, context: BuildContext) -> float:
        survival = 1.0
        for p in failure_probabilities(config, context).values():
            survival *= 1.0 - p
        return survival

    def run(self, config: BuildConfig, context: BuildContext) -> BuildResult:
        probabilities = failure_probabilities(config, context)
        # A fixed number of draws per build keeps the stream aligned whatever the outcome.
        fires = self._builds.random(len(_CAUSES))
        noise = float(self._builds.lognormal(0.0, _DURATION_SIGMA))
        where = float(self._builds.uniform(0.2, 0.9))
        cause = next((c for c, u in zip(_CAUSES, fires, strict=True) if u < probabilities[c]), None)
        full = expected_duration(config, context) * noise
        if cause is None:
            result = BuildResult(status="success", duration=round(min(full, TIMEOUT_S), 2))
        else:
            duration = {
                "image_pull": 5.0 + 25.0 * where,
                "dependency_resolution": full * 0.15 * where,
                "oom": full * where,
                "timeout": TIMEOUT_S,
                "flaky_test": min(full, TIMEOUT_S),
            }[cause]
            result = BuildResult(
                status="failed", duration=round(duration, 2), error=ERROR_TEXTS[cause], error_class=cause
            )
        if self._pending is not None and self._pending[1] == context:
            self._last_error[self._pending[0]] = result.error_class
            self._pending = None
        return result
