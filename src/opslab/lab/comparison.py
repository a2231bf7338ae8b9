"""The statistics of a comparison (``analysis/comparison.json``, ``opslab lab compare``), as typed models.

**The error rule**, the same everywhere: an errored trial (outcome ``error``: the harness crashed, hung,
wrote nothing or broke the protocol, or said ``error`` itself) is not a success. It counts as a failure
in every success rate, in pass@k and in the paired tests on success; every other metric has no value for
it and leaves it out. Errors are also counted in a column of their own.

Metric kinds (decided over all trials compared, so every variant gets the same method) come from a
declaration or from the values, never from a default that would bound a metric it knows nothing about:
``analysis.metric_kinds`` declares them (``val_acc``, the trainer protocol's accuracy, is a fraction by
the protocol; ``success`` is always a rate). Undeclared, a metric a harness reports as booleans, or one
whose values are 0 and 1 (both seen), is a **rate** (Wilson interval, clustered by task with
replications; the paired difference with Newcombe's hybrid score interval), and any other a **mean** (t
intervals) — a latency of 0.0057 s is a mean, not a share. Only a declared **fraction** gets a t interval
kept inside [0, 1] (the difference inside [−1, 1]). A declaration the values contradict (a rate with a
0.5, a fraction with a 3) is not applied: the metric is a mean and a warning says why. The statistics are
in ``opslab.judge`` (``kind_of``, ``fits``, ``estimate``, ``difference``); ``metric_kinds`` decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from opslab.judge import Interval, MetricKind, difference, estimate, mcnemar, pass_at_k, sign_test
from opslab.lab.records import TrialRecord

Kind = MetricKind
Direction = Literal["minimize", "maximize"]
TRAINER_METRICS = ("objective", "train_loss", "val_acc", "wall_time_s")
ERROR_RULE = (
    "an errored trial is not a success: it counts as a failure in every success rate and paired test on "
    "success; other metrics have no value for it and leave it out"
)
Scored = tuple[TrialRecord, dict[str, float]]


def trial_values(o: TrialRecord) -> dict[str, float]:
    """A trial's metric values under the error rule: ``success`` always; the harness's numeric metrics,
    the trainer fields and the objective (as ``objective`` and under its own name) unless it errored."""
    values = {"success": 1.0 if o.outcome == "success" else 0.0}
    if o.outcome == "error":
        return values
    for name in TRAINER_METRICS[1:]:
        v = getattr(o, name)
        if isinstance(v, int | float) and math.isfinite(v):
            values[name] = float(v)
    if o.objective is not None and math.isfinite(o.objective.value):
        values["objective"] = float(o.objective.value)
        values.setdefault(o.objective.name, float(o.objective.value))
    for name, m in o.metrics.items():
        if isinstance(m, int | float) and math.isfinite(m):
            values.setdefault(name, float(m))
    return values


def score(records: Sequence[TrialRecord]) -> list[Scored]:
    return [(o, trial_values(o)) for o in records]


def by_task(trials: Sequence[Scored], metric: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for o, v in trials:
        if metric in v:
            out.setdefault(o.task_id, []).append(v[metric])
    return out


def _ci(iv: Interval) -> tuple[float, float] | None:
    return None if math.isnan(iv.low) or math.isnan(iv.high) else (iv.low, iv.high)


class MetricSummary(BaseModel):
    kind: Kind
    mean: float
    ci: tuple[float, float] | None  # None: one value (or one task) gives no interval of a mean
    n: int
    n_tasks: int
    clustered_by_task: bool
    method: str


class VariantSummary(BaseModel):
    n: int
    successes: int
    failures: int  # outcome failure, timeout or skipped
    errors: int
    success_rate: float | None  # successes / n: errors count as failures
    success_ci: tuple[float, float]
    success_ci_method: str
    error_rate: float | None
    pass_at_k: dict[str, float | None]
    metrics: dict[str, MetricSummary]


def summarise_metric(tasks: dict[str, list[float]], kind: Kind) -> MetricSummary:
    e = estimate(tasks, kind)
    return MetricSummary(
        kind=kind,
        mean=e.mean,
        ci=_ci(e.ci),
        n=e.n,
        n_tasks=e.n_tasks,
        clustered_by_task=e.clustered_by_task,
        method=e.method,
    )


def summarise(trials: Sequence[Scored], metrics: Sequence[str], kinds: dict[str, Kind]) -> VariantSummary:
    """One variant's line: outcome counts, the success rate (errors are failures), its metrics."""
    n = len(trials)
    wins = sum(1 for o, _ in trials if o.outcome == "success")
    errors = sum(1 for o, _ in trials if o.outcome == "error")
    runs = by_task(trials, "success")
    success = summarise_metric(runs, "rate") if runs else None
    k_max = min((len(v) for v in runs.values()), default=0)
    pass_k: dict[str, float | None] = {}
    for k in range(1, k_max + 1):
        vals = [pass_at_k(len(v), int(sum(v)), k) for v in runs.values()]
        pass_k[str(k)] = sum(vals) / len(vals) if vals else None
    stats = {m: summarise_metric(t, kinds[m]) for m in metrics if (t := by_task(trials, m))}
    return VariantSummary(
        n=n,
        successes=wins,
        failures=n - wins - errors,
        errors=errors,
        success_rate=wins / n if n else None,
        success_ci=success.ci if success and success.ci else (0.0, 1.0),
        success_ci_method=success.method if success else "Wilson score",
        error_rate=errors / n if n else None,
        pass_at_k=pass_k,
        metrics=stats,
    )


class MetricDifference(BaseModel):
    kind: Kind
    n_tasks: int
    baseline_mean: float
    treatment_mean: float
    mean_difference: float  # treatment − baseline
    ci: tuple[float, float] | None
    ci_excludes_zero: bool
    method: str


class PassFail(BaseModel):
    test: str
    n_tasks: int
    baseline_only: int
    treatment_only: int
    p_value: float


class ObjectiveSpec(BaseModel):
    name: str
    direction: Direction


class ObjectiveComparison(ObjectiveSpec):
    n_tasks: int
    baseline_mean: float
    treatment_mean: float
    improvement: float  # in the objective's direction: > 0 means the treatment is better
    improvement_ci: tuple[float, float] | None
    better: Literal["treatment", "baseline", "inconclusive"]


class Contrast(BaseModel):
    treatment: str
    baseline: str
    baseline_errors: int
    treatment_errors: int
    metrics: dict[str, MetricDifference]
    pass_fail: PassFail
    objective: ObjectiveComparison | None = None


def _mean(v: list[float]) -> float:
    return sum(v) / len(v)


def compare_metric(
    b: dict[str, list[float]], t: dict[str, list[float]], kind: Kind
) -> MetricDifference | None:
    """Treatment − baseline paired by task, with the interval for the metric's kind."""
    d = difference(b, t, kind)
    if d is None:
        return None
    ci = _ci(d.ci)
    return MetricDifference(
        kind=kind,
        n_tasks=d.n_tasks,
        baseline_mean=d.baseline_mean,
        treatment_mean=d.treatment_mean,
        mean_difference=d.difference,
        ci=ci,
        ci_excludes_zero=ci is not None and not ci[0] <= 0.0 <= ci[1],
        method=d.method,
    )


def contrast(
    ids: tuple[str, str],
    baseline: Sequence[Scored],
    treatment: Sequence[Scored],
    metrics: Sequence[str],
    kinds: dict[str, Kind],
    objective: ObjectiveSpec | None = None,
) -> Contrast:
    """``ids`` = (baseline id, treatment id). One trial per task: McNemar on pass/fail; with replications
    the sign test on per-task success rates (a majority vote per task would hide a failing replication)."""
    diffs = {}
    for m in metrics:
        d = compare_metric(by_task(baseline, m), by_task(treatment, m), kinds.get(m, "mean"))
        if d is not None:
            diffs[m] = d
    obj = None
    if objective is not None:
        obj = diffs.get("objective") or compare_metric(
            by_task(baseline, "objective"), by_task(treatment, "objective"), kinds.get("objective", "mean")
        )
    b_runs, t_runs = by_task(baseline, "success"), by_task(treatment, "success")
    bp = {k: _mean(v) for k, v in b_runs.items()}
    tp = {k: _mean(v) for k, v in t_runs.items()}
    if any(len(v) > 1 for v in (*b_runs.values(), *t_runs.values())):
        test = sign_test(bp, tp)
    else:
        test = mcnemar({k: v >= 1 for k, v in bp.items()}, {k: v >= 1 for k, v in tp.items()})
    return Contrast(
        baseline=ids[0],
        treatment=ids[1],
        baseline_errors=sum(1 for o, _ in baseline if o.outcome == "error"),
        treatment_errors=sum(1 for o, _ in treatment if o.outcome == "error"),
        metrics=diffs,
        pass_fail=PassFail(
            test=test.test,
            n_tasks=test.n_tasks,
            baseline_only=test.baseline_only,
            treatment_only=test.treatment_only,
            p_value=test.p_value,
        ),
        objective=_objective(objective, obj) if objective is not None and obj is not None else None,
    )


def _objective(spec: ObjectiveSpec, d: MetricDifference) -> ObjectiveComparison:
    sign = 1.0 if spec.direction == "maximize" else -1.0
    ci = None if d.ci is None else (min(sign * d.ci[0], sign * d.ci[1]), max(sign * d.ci[0], sign * d.ci[1]))
    better: Literal["treatment", "baseline", "inconclusive"] = "inconclusive"
    if ci is not None and ci[0] > 0:
        better = "treatment"
    elif ci is not None and ci[1] < 0:
        better = "baseline"
    return ObjectiveComparison(
        name=spec.name,
        direction=spec.direction,
        n_tasks=d.n_tasks,
        baseline_mean=d.baseline_mean,
        treatment_mean=d.treatment_mean,
        improvement=sign * d.mean_difference,
        improvement_ci=ci,
        better=better,
    )


def objective_of(records: Sequence[TrialRecord]) -> tuple[ObjectiveSpec | None, list[str]]:
    """The objective the trials report, if they agree on its name and direction (else a warning)."""
    specs = {(o.objective.name, o.objective.direction) for o in records if o.objective is not None}
    if not specs:
        return None, []
    if len(specs) > 1:
        seen = ", ".join(f"{n} ({d})" for n, d in sorted(specs))
        return None, [f"trials disagree on the objective ({seen}): it is not compared"]
    name, direction = specs.pop()
    return ObjectiveSpec(name=name, direction=direction), []


def metrics_to_compare(records: Sequence[TrialRecord], configured: Sequence[str]) -> list[str]:
    """The configured metrics, then the trainer fields any trial reported (objective first)."""
    extra = [m for m in TRAINER_METRICS if any(getattr(o, m) is not None for o in records)]
    return list(dict.fromkeys([*configured, *extra]))
