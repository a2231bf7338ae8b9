"""Intervals that stay honest with few tasks: rates and paired differences over the same tasks.

- ``clustered_wilson_interval``: a rate with the Wilson score interval. With replications, trials of one
  task are not independent: the interval uses Kish's effective sample size (n divided by the design
  effect, estimated from the spread of the tasks' success counts), so it widens when tasks differ.
- ``paired_rate_difference``: treatment − baseline rate over the tasks both variants ran, with
  Newcombe's hybrid score interval for paired data (1998, method 10: Wilson limits of each rate, combined
  with the correlation of the pairs). With replications the same combination (Zou & Donner's MOVER)
  takes the design-effect Wilson limits and the correlation of the two variants' task-level counts.
- ``paired_mean_difference``: the mean per-task difference of a numeric metric with a Student t
  interval (a bootstrap of three tasks can only return a handful of distinct resamples), optionally kept
  inside known bounds.

Every rate interval lies in [0, 1] and every difference of rates in [−1, 1], for any counts.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opslab.judge.compare import PairedDifference
from opslab.judge.stats import Interval, t_interval


def _z(level: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + level / 2)


def _wilson(p: float, n: float, level: float) -> Interval:
    """Wilson score interval of a rate ``p`` observed over ``n`` (possibly effective, fractional) trials."""
    if n <= 0:
        return Interval(0.0, 1.0, level)
    z = _z(level)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if p <= 0 else max(0.0, centre - half)
    high = 1.0 if p >= 1 else min(1.0, centre + half)
    return Interval(low, high, level)


def _groups(values_by_task: Mapping[str, Sequence[float]]) -> list[list[float]]:
    return [[float(x) for x in v] for v in values_by_task.values() if len(v)]


def design_effect(groups: Sequence[Sequence[float]]) -> float:
    """Variance of a rate over clustered trials relative to independent trials, at least 1.

    The clustered variance is the cluster-robust (ratio estimator) one with the m/(m−1) small-sample
    factor. 1 without replications (every task one trial), with one task, or with no spread to estimate.
    """
    m = len(groups)
    n = sum(len(g) for g in groups)
    if m < 2 or n == m:
        return 1.0
    p = sum(sum(g) for g in groups) / n
    var_srs = p * (1 - p) / n
    if var_srs <= 0:
        return 1.0
    var_c = m / (m - 1) * sum((sum(g) - p * len(g)) ** 2 for g in groups) / (n * n)
    return max(1.0, var_c / var_srs)


def clustered_wilson_interval(
    values_by_task: Mapping[str, Sequence[float]], *, level: float = 0.95
) -> Interval:
    """Wilson interval of the rate of successes (values 1/0) over all trials, clustered by task."""
    groups = _groups(values_by_task)
    n = sum(len(g) for g in groups)
    if n == 0:
        return Interval(0.0, 1.0, level)
    p = sum(sum(g) for g in groups) / n
    return _wilson(p, n / design_effect(groups), level)


@dataclass(frozen=True, slots=True)
class RateDifference:
    """Treatment − baseline rate over the tasks both ran (trials pooled per variant)."""

    n_tasks: int
    baseline_rate: float
    treatment_rate: float
    difference: float
    ci: Interval
    correlation: float
    method: str


NEWCOMBE = "Newcombe hybrid score (paired, method 10)"
MOVER = "Newcombe/MOVER hybrid score, clustered by task"


def paired_rate_difference(
    baseline: Mapping[str, Sequence[float]],
    treatment: Mapping[str, Sequence[float]],
    *,
    level: float = 0.95,
) -> RateDifference:
    """Difference of two success rates paired by task (values 1/0 per trial), see the module docstring."""
    tasks = sorted(t for t in set(baseline) & set(treatment) if len(baseline[t]) and len(treatment[t]))
    if not tasks:
        nan = math.nan
        return RateDifference(0, nan, nan, nan, Interval(nan, nan, level), nan, NEWCOMBE)
    b = [[float(x) for x in baseline[t]] for t in tasks]
    tr = [[float(x) for x in treatment[t]] for t in tasks]
    replicated = any(len(g) > 1 for g in (*b, *tr))
    p1 = sum(map(sum, tr)) / sum(map(len, tr))
    p2 = sum(map(sum, b)) / sum(map(len, b))
    l1, u1 = _bounds(_wilson(p1, sum(map(len, tr)) / design_effect(tr), level))
    l2, u2 = _bounds(_wilson(p2, sum(map(len, b)) / design_effect(b), level))
    e1 = [sum(g) - p1 * len(g) for g in tr]
    e2 = [sum(g) - p2 * len(g) for g in b]
    cross = sum(x * y for x, y in zip(e1, e2, strict=True))
    scale = math.sqrt(sum(x * x for x in e1) * sum(y * y for y in e2))
    if scale <= 0:
        r = 0.0
    elif replicated:
        r = cross / scale
    else:
        # Newcombe's continuity correction of phi: (ad − bc) is cross·n; it shrinks by n/2 when positive.
        r = (cross - 0.5) / scale if cross > 0.5 else (0.0 if cross >= 0 else cross / scale)
    r = min(1.0, max(-1.0, r))
    d = p1 - p2
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * r * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * r * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    ci = Interval(max(-1.0, d - below), min(1.0, d + above), level)
    return RateDifference(len(tasks), p2, p1, d, ci, r, MOVER if replicated else NEWCOMBE)


def _bounds(iv: Interval) -> tuple[float, float]:
    return iv.low, iv.high


def paired_mean_difference(
    baseline: Mapping[str, float],
    treatment: Mapping[str, float],
    *,
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> PairedDifference:
    """Treatment − baseline per task (tasks both saw) with a Student t interval of the mean difference.

    One task gives no interval (NaN limits), unless ``bounds`` are known: then the interval is the bounds.
    With ``bounds`` the interval is kept inside them (the true difference lies there, so cutting the
    interval to them keeps its coverage).
    """
    tasks = sorted(set(baseline) & set(treatment))
    diffs = [treatment[t] - baseline[t] for t in tasks]
    if not diffs:
        return PairedDifference(0, math.nan, Interval(math.nan, math.nan, level))
    mean = sum(diffs) / len(diffs)
    iv = t_interval(diffs, level=level) if len(diffs) > 1 else Interval(-math.inf, math.inf, level)
    if bounds is not None:
        iv = Interval(max(bounds[0], iv.low), min(bounds[1], iv.high), level)
    elif len(diffs) == 1:
        iv = Interval(math.nan, math.nan, level)
    return PairedDifference(len(diffs), mean, iv)
