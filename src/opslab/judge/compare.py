"""Comparisons of variants over the same tasks: paired differences, pass/fail, clustered means, pass@k."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opslab.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")

from opslab.judge.stats import Interval, binomial_test, t_interval


@dataclass(frozen=True, slots=True)
class PairedDifference:
    n_tasks: int
    mean_difference: float
    ci: Interval


def paired_difference(
    baseline: Mapping[str, float],
    treatment: Mapping[str, float],
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDifference:
    """Treatment − baseline per task (tasks both saw), with a bootstrap CI of the mean difference."""
    tasks = sorted(set(baseline) & set(treatment))
    if not tasks:
        return PairedDifference(0, math.nan, Interval(math.nan, math.nan, level))
    d = np.array([treatment[t] - baseline[t] for t in tasks], dtype=np.float64)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    lo, hi = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)])
    return PairedDifference(len(tasks), float(d.mean()), Interval(float(lo), float(hi), level))


@dataclass(frozen=True, slots=True)
class PairedBinary:
    n_tasks: int
    baseline_only: int
    treatment_only: int
    p_value: float
    test: str


def mcnemar(baseline: Mapping[str, bool], treatment: Mapping[str, bool]) -> PairedBinary:
    """Exact McNemar test on tasks' pass/fail: only tasks where the variants disagree carry information."""
    return _binomial_on_disagreements(
        {k: float(v) for k, v in baseline.items()},
        {k: float(v) for k, v in treatment.items()},
        "exact McNemar (binomial on discordant tasks)",
    )


def sign_test(baseline: Mapping[str, float], treatment: Mapping[str, float]) -> PairedBinary:
    """Exact sign test on tasks' success rates (with replications): tasks where one variant did better
    count, ties drop out. On 0/1 rates it is McNemar's test."""
    return _binomial_on_disagreements(
        baseline, treatment, "exact sign test (binomial on tasks whose rates differ)"
    )


def _binomial_on_disagreements(
    baseline: Mapping[str, float], treatment: Mapping[str, float], test: str
) -> PairedBinary:
    tasks = sorted(set(baseline) & set(treatment))
    b = sum(1 for t in tasks if baseline[t] > treatment[t])
    c = sum(1 for t in tasks if treatment[t] > baseline[t])
    p = binomial_test(min(b, c), b + c)
    return PairedBinary(len(tasks), b, c, p, test)


def clustered_mean_interval(
    values_by_task: Mapping[str, Sequence[float]], *, level: float = 0.95
) -> Interval:
    """Mean with a t interval over task means: replications of one task are not independent samples."""
    means = [float(np.mean(v)) for v in values_by_task.values() if len(v)]
    return t_interval(means, level=level)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): chance that at least one of k samples of n (c correct) passes."""
    if k <= 0 or n <= 0 or k > n:
        return math.nan
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
