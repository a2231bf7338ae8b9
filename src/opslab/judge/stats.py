"""Statistics shared by lab, canary and autoops. Pure functions on sequences of floats; no I/O.

Conventions: percentiles are in [0, 100]; rates are fractions in [0, 1]; every random procedure
takes a ``seed`` so results are reproducible.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opslab.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
else:
    np = lazy_module("numpy")  # imported by the first function that needs it (a Wilson interval does not)


def _scipy_stats() -> Any:
    """SciPy's stats module, imported on first use: it costs a second or more, which a CLI that only
    plans trials or prints a table should not pay."""
    from scipy import stats

    return stats


def _t_quantile(p: float, df: int) -> float:
    """Student-t quantile from scipy.special (a fifth of the import cost of scipy.stats)."""
    from scipy import special

    return float(special.stdtrit(df, p))


def warm_up() -> None:
    """Import the SciPy parts the statistics use now rather than on the first call (it takes a good part
    of a second): for a caller with time to spare, such as a runner waiting on its trials."""
    _t_quantile(0.975, 10)


Statistic = Callable[["NDArray[np.float64]"], float]


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float
    level: float = 0.95

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def excludes_zero(self) -> bool:
        return not self.contains(0.0)


def _arr(values: Sequence[float]) -> NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default, as load tools report it); NaN when empty."""
    if not 0 <= q <= 100:
        raise ValueError("q must be in [0, 100]")
    a = _arr(values)
    return float(np.percentile(a, q)) if a.size else math.nan


def wilson_interval(successes: int, n: int, *, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial rate: sane at 0, at 1 and for small n."""
    if n <= 0:
        return Interval(0.0, 1.0, level)
    if not 0 <= successes <= n:
        raise ValueError("successes must be in [0, n]")
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Exactly 0 (1) at 0 (n) successes, where the formula leaves rounding dust.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low, high, level)


def t_interval(values: Sequence[float], *, level: float = 0.95) -> Interval:
    """Student-t interval of a mean; a single value gives a degenerate interval at that value."""
    a = _arr(values)
    if a.size == 0:
        return Interval(math.nan, math.nan, level)
    mean = float(a.mean())
    if a.size == 1:
        return Interval(mean, mean, level)
    sem = float(a.std(ddof=1) / math.sqrt(a.size))
    half = _t_quantile(0.5 + level / 2, a.size - 1) * sem
    return Interval(mean - half, mean + half, level)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Statistic,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over one sample."""
    a = _arr(values)
    if a.size == 0:
        return Interval(math.nan, math.nan, level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(resamples, a.size))
    boots = np.array([statistic(a[row]) for row in idx])
    lo, hi = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(lo), float(hi), level)


def relative_delta(baseline: float, candidate: float) -> float:
    """(candidate − baseline) / baseline in percent; NaN when the baseline is 0 or undefined."""
    if not baseline or math.isnan(baseline) or math.isnan(candidate):
        return math.nan
    return 100.0 * (candidate - baseline) / baseline


def bootstrap_relative_delta_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    statistic: Statistic,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of the relative change (%) of ``statistic`` from baseline to candidate.

    The two samples are resampled independently (they are different windows of the experiment).
    """
    a, b = _arr(baseline), _arr(candidate)
    if a.size == 0 or b.size == 0:
        return Interval(math.nan, math.nan, level)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(resamples, a.size))
    ib = rng.integers(0, b.size, size=(resamples, b.size))
    deltas = []
    for ra, rb in zip(ia, ib, strict=True):
        base = statistic(a[ra])
        if base:
            deltas.append(100.0 * (statistic(b[rb]) - base) / base)
    if not deltas:
        return Interval(math.nan, math.nan, level)
    lo, hi = np.percentile(deltas, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(lo), float(hi), level)


def p95(values: NDArray[np.float64]) -> float:
    return float(np.percentile(values, 95))


@dataclass(frozen=True, slots=True)
class MannWhitney:
    u: float
    p_value: float
    hodges_lehmann: float
    """Median of all pairwise differences candidate − baseline: the shift estimate."""


def mann_whitney(baseline: Sequence[float], candidate: Sequence[float]) -> MannWhitney:
    """Two-sided Mann-Whitney U with the Hodges–Lehmann shift (Kayenta's canary comparison)."""
    a, b = _arr(baseline), _arr(candidate)
    if a.size == 0 or b.size == 0:
        return MannWhitney(math.nan, math.nan, math.nan)
    res = _scipy_stats().mannwhitneyu(b, a, alternative="two-sided")
    if a.size * b.size <= 4_000_000:
        shift = float(np.median(np.subtract.outer(b, a)))
    else:  # bound memory on huge windows: the shift from a seeded subsample of pairs
        rng = np.random.default_rng(0)
        shift = float(np.median(rng.choice(b, 2_000_000) - rng.choice(a, 2_000_000)))
    return MannWhitney(float(res.statistic), float(res.pvalue), shift)


@dataclass(frozen=True, slots=True)
class SampleRatio:
    observed: tuple[int, ...]
    expected_share: tuple[float, ...]
    chi2: float
    p_value: float
    imbalance_pct: float
    """Largest relative deviation of an arm's count from its expected count, in percent."""

    def mismatch(self, alpha: float = 0.001) -> bool:
        return self.p_value < alpha


def sample_ratio_mismatch(
    observed: Sequence[int], expected_share: Sequence[float] | None = None
) -> SampleRatio:
    """Chi-square goodness-of-fit of arm sizes against the planned split (equal by default)."""
    obs = np.asarray(observed, dtype=np.float64)
    shares = np.asarray(expected_share if expected_share is not None else [1.0] * obs.size, dtype=np.float64)
    shares = shares / shares.sum()
    total = obs.sum()
    if total == 0:
        return SampleRatio(tuple(int(x) for x in obs), tuple(shares.tolist()), 0.0, 1.0, 0.0)
    expected = shares * total
    res = _scipy_stats().chisquare(obs, expected)
    imbalance = float(np.max(np.abs(obs - expected) / expected) * 100)
    return SampleRatio(
        tuple(int(x) for x in obs), tuple(shares.tolist()), float(res.statistic), float(res.pvalue), imbalance
    )


@dataclass(frozen=True, slots=True)
class ProportionTest:
    rate_a: float
    rate_b: float
    odds_ratio: float
    p_value: float


def two_proportion_test(successes_a: int, n_a: int, successes_b: int, n_b: int) -> ProportionTest:
    """Fisher's exact test (two-sided) of rate a = successes_a/n_a against rate b: exact at small counts."""
    if n_a <= 0 or n_b <= 0:
        return ProportionTest(math.nan, math.nan, math.nan, 1.0)
    table = [[successes_a, n_a - successes_a], [successes_b, n_b - successes_b]]
    res = _scipy_stats().fisher_exact(table, alternative="two-sided")
    return ProportionTest(successes_a / n_a, successes_b / n_b, float(res.statistic), float(res.pvalue))


def binomial_test(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test: the p-value of ``k`` successes in ``n`` trials at rate ``p``."""
    if n <= 0:
        return 1.0
    return float(_scipy_stats().binomtest(k, n, p).pvalue)
