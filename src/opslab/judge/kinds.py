"""A metric's interval and its paired difference chosen by what the metric is: a rate, a fraction, a mean.

- **rate** (values 0/1): the Wilson score interval (clustered by task with replications), the paired
  difference with Newcombe's hybrid score interval: inside [0, 1] and [−1, 1] for any counts.
- **fraction** (declared; its values in [0, 1]): Student t intervals kept inside [0, 1], differences
  inside [−1, 1].
- **mean** (anything else): Student t intervals; one value (or one task) gives no interval.

Values come per task (``{task: [value per trial]}``): with replications the intervals of means are over
task means, since replications of one task are not independent samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from opslab.judge.compare import clustered_mean_interval
from opslab.judge.rates import clustered_wilson_interval, paired_mean_difference, paired_rate_difference
from opslab.judge.stats import Interval, t_interval

MetricKind = Literal["rate", "fraction", "mean"]
NO_INTERVAL = Interval(math.nan, math.nan)


def kind_of(values: Sequence[float], *, booleans: bool = False) -> MetricKind:
    """The kind the values themselves show: ``rate`` when reported as booleans or when they are 0 and 1
    only (both seen); else ``mean``. A ``fraction`` is never inferred: values inside [0, 1] do not show
    that a metric is bounded there (a latency of 0.0057 s is not a share), and a fraction's intervals are
    clamped to [0, 1], so only a declaration makes one (see ``fits``)."""
    seen = set(values)
    if booleans or seen == {0.0, 1.0}:
        return "rate"
    return "mean"


def fits(kind: MetricKind, values: Sequence[float]) -> bool:
    """Whether ``values`` can be of a declared ``kind``: a rate's are 0 or 1, a fraction's lie in [0, 1]."""
    if kind == "rate":
        return all(x in (0.0, 1.0) for x in values)
    if kind == "fraction":
        return all(0.0 <= x <= 1.0 for x in values)
    return True


@dataclass(frozen=True, slots=True)
class Estimate:
    mean: float
    ci: Interval  # NaN limits: no interval
    n: int
    n_tasks: int
    clustered_by_task: bool
    method: str


def estimate(values_by_task: Mapping[str, Sequence[float]], kind: MetricKind) -> Estimate:
    """Mean of all values with the interval for ``kind``; clustered by task when a task has several."""
    tasks = {k: list(v) for k, v in values_by_task.items() if len(v)}
    flat = [x for v in tasks.values() for x in v]
    if not flat:
        return Estimate(math.nan, NO_INTERVAL, 0, 0, False, "")
    clustered = any(len(v) > 1 for v in tasks.values())
    if kind == "rate":
        iv = clustered_wilson_interval(tasks)
        method = "Wilson score" + (", clustered by task (design effect)" if clustered else "")
    else:
        method = "Student t" + (" over task means" if clustered else "")
        if (len(tasks) if clustered else len(flat)) < 2:
            iv = NO_INTERVAL if kind == "mean" else Interval(0.0, 1.0)
        else:
            iv = clustered_mean_interval(tasks) if clustered else t_interval(flat)
        if kind == "fraction":
            iv, method = Interval(max(0.0, iv.low), min(1.0, iv.high)), method + ", kept in [0, 1]"
    return Estimate(sum(flat) / len(flat), iv, len(flat), len(tasks), clustered, method)


@dataclass(frozen=True, slots=True)
class Difference:
    n_tasks: int
    baseline_mean: float
    treatment_mean: float
    difference: float  # treatment − baseline
    ci: Interval  # NaN limits: no interval
    method: str


def difference(
    baseline: Mapping[str, Sequence[float]], treatment: Mapping[str, Sequence[float]], kind: MetricKind
) -> Difference | None:
    """Treatment − baseline paired by task (the tasks both have values for); None when they share none."""
    if kind == "rate":
        r = paired_rate_difference(baseline, treatment)
        if not r.n_tasks:
            return None
        return Difference(r.n_tasks, r.baseline_rate, r.treatment_rate, r.difference, r.ci, r.method)
    b = {k: sum(v) / len(v) for k, v in baseline.items() if len(v)}
    t = {k: sum(v) / len(v) for k, v in treatment.items() if len(v)}
    shared = sorted(set(b) & set(t))
    if not shared:
        return None
    bounds = (-1.0, 1.0) if kind == "fraction" else None
    d = paired_mean_difference(b, t, bounds=bounds)
    return Difference(
        d.n_tasks,
        sum(b[k] for k in shared) / len(shared),
        sum(t[k] for k in shared) / len(shared),
        d.mean_difference,
        d.ci,
        "paired t over task means" + (", kept in [−1, 1]" if bounds else ""),
    )
