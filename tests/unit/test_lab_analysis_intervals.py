"""Intervals that hold with few tasks: every rate interval inside [0, 1], every difference of rates inside
[−1, 1], for 1–3 tasks and any replications — in the statistics, in comparison.json and in report.md."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opslab.judge import (
    clustered_wilson_interval,
    design_effect,
    estimate,
    fits,
    kind_of,
    paired_mean_difference,
    paired_rate_difference,
    wilson_interval,
)
from opslab.lab.analysis import compare_variants, report_md
from opslab.lab.records import TrialRecord
from tests.conftest import examples

SETTINGS = settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))
EPS = 1e-12

# {task: [0/1 per replication]} for 1–3 tasks and 1–5 replications
runs_by_task = st.integers(1, 3).flatmap(
    lambda tasks: st.integers(1, 5).flatmap(
        lambda reps: st.fixed_dictionaries(
            {
                f"t{i}": st.lists(st.sampled_from([0.0, 1.0]), min_size=reps, max_size=reps)
                for i in range(tasks)
            }
        )
    )
)


@SETTINGS
@given(runs_by_task)
def test_a_rate_interval_stays_in_0_1_and_holds_the_estimate(runs: dict[str, list[float]]) -> None:
    iv = clustered_wilson_interval(runs)
    p = sum(map(sum, runs.values())) / sum(map(len, runs.values()))
    assert 0.0 <= iv.low <= p + EPS and p - EPS <= iv.high <= 1.0


@SETTINGS
@given(runs_by_task, runs_by_task)
def test_a_difference_of_rates_stays_in_minus_1_1_and_holds_the_estimate(
    baseline: dict[str, list[float]], treatment: dict[str, list[float]]
) -> None:
    d = paired_rate_difference(baseline, treatment)
    assert d.n_tasks == len(set(baseline) & set(treatment)) >= 1
    assert -1.0 <= d.ci.low <= d.difference + EPS and d.difference - EPS <= d.ci.high <= 1.0
    assert -1.0 <= d.correlation <= 1.0


def test_newcombes_worked_example_method_10() -> None:
    # Newcombe (1998), paired example (a): 36 both succeed, 12 only the first, 2 only the second, 0 neither.
    cells = [(1.0, 1.0)] * 36 + [(1.0, 0.0)] * 12 + [(0.0, 1.0)] * 2
    treatment = {f"t{i}": [x] for i, (x, _) in enumerate(cells)}
    baseline = {f"t{i}": [y] for i, (_, y) in enumerate(cells)}
    d = paired_rate_difference(baseline, treatment)
    assert d.difference == pytest.approx(0.2)
    assert (round(d.ci.low, 4), round(d.ci.high, 4)) == (0.0569, 0.3404)
    assert "method 10" in d.method


def test_without_replications_a_rate_is_the_plain_wilson_interval() -> None:
    runs = {"a": [1.0], "b": [0.0], "c": [1.0]}
    assert design_effect(list(runs.values())) == 1.0
    assert clustered_wilson_interval(runs) == wilson_interval(2, 3)


def test_replications_that_agree_within_a_task_widen_the_interval() -> None:
    # Each task always succeeds or always fails: 10 replications say little more than 1 would.
    runs = {"a": [1.0] * 10, "b": [0.0] * 10, "c": [1.0] * 10}
    clustered = clustered_wilson_interval(runs)
    naive = wilson_interval(20, 30)
    assert design_effect(list(runs.values())) > 5
    assert clustered.low < naive.low and clustered.high > naive.high


def test_three_tasks_no_longer_give_a_rate_interval_outside_0_1() -> None:
    # The reported bug: a t interval over [1, 0, 1] is [−0.77, 2.10].
    e = estimate({"a": [1.0], "b": [0.0], "c": [1.0]}, "rate")
    assert 0.0 <= e.ci.low < e.mean < e.ci.high <= 1.0 and e.method == "Wilson score"


def test_metric_kinds() -> None:
    assert kind_of([0.0, 1.0, 1.0]) == "rate"
    assert kind_of([1.0, 1.0], booleans=True) == "rate"
    assert kind_of([0.25, 1.0]) == "mean"  # values in [0, 1] do not make a share: only a declaration does
    assert kind_of([1.0, 1.0]) == "mean"  # a constant says nothing about its range
    assert kind_of([3.0, 0.5]) == "mean"
    assert fits("fraction", [0.0, 0.25, 1.0]) and not fits("fraction", [0.5, 1.5])
    assert fits("rate", [0.0, 1.0]) and not fits("rate", [0.0, 0.5])


def test_a_latency_in_seconds_is_a_mean_not_a_fraction_kept_in_0_1() -> None:
    # The reported bug: latency_ms values like 0.0057 were taken for a share and clamped to [0, 1].
    records = [
        _record(v, f"t{t}", 1, "success", {"latency_ms": lat, "accuracy": acc})
        for v, lat0 in (("base", 0.0057), ("treat", 0.0049))
        for t, (lat, acc) in enumerate(
            (lat0 + d, a) for d, a in ((0.0, 0.5), (0.0011, 0.75), (-0.0009, 0.25), (0.0004, 1.0))
        )
    ]
    c = compare_variants("run_x", records, ["base", "treat"], ["success", "accuracy", "latency_ms"])
    assert c.metric_kinds == {"success": "rate", "accuracy": "mean", "latency_ms": "mean"}
    latency = c.variants["base"].metrics["latency_ms"]
    assert latency.method == "Student t"  # not "kept in [0, 1]"
    declared = compare_variants(
        "run_x", records, ["base", "treat"], ["success", "accuracy", "latency_ms"], {"accuracy": "fraction"}
    )
    assert declared.metric_kinds["accuracy"] == "fraction" and declared.metric_kinds["latency_ms"] == "mean"
    assert declared.variants["base"].metrics["accuracy"].method.endswith("kept in [0, 1]")
    assert not declared.warnings


def test_a_declaration_the_values_contradict_is_a_warning_and_a_mean() -> None:
    records = [
        _record(v, f"t{t}", 1, "success", {"score": 3.0 * t}) for v in ("base", "treat") for t in range(3)
    ]
    c = compare_variants("run_x", records, ["base", "treat"], ["success", "score"], {"score": "fraction"})
    assert c.metric_kinds["score"] == "mean"
    assert c.warnings == ["score is declared a fraction but not every value is in [0, 1]: compared as a mean"]


def test_a_numeric_difference_needs_two_tasks_for_an_interval_unless_bounded() -> None:
    one = paired_mean_difference({"a": 1.0}, {"a": 3.0})
    assert one.mean_difference == 2.0 and one.ci.low != one.ci.low  # NaN: no interval from one task
    bounded = paired_mean_difference({"a": 0.2}, {"a": 0.9}, bounds=(-1.0, 1.0))
    assert (bounded.ci.low, bounded.ci.high) == (-1.0, 1.0)
    wide = paired_mean_difference({"a": 0.0, "b": 0.5}, {"a": 0.9, "b": 0.6}, bounds=(-1.0, 1.0))
    assert wide.ci.low >= -1.0 and wide.ci.high <= 1.0


def _record(variant: str, task: str, rep: int, outcome: str, metrics: dict[str, float | bool]) -> TrialRecord:
    return TrialRecord(
        trial_id=f"{variant}-{task}-{rep}",
        variant_id=variant,
        task_id=task,
        replication=rep,
        seed=rep,
        outcome=outcome,  # type: ignore[arg-type]
        metrics=metrics if outcome != "error" else {},
    )


trial = st.tuples(
    st.sampled_from(["success", "failure", "error", "timeout"]),
    st.sampled_from([0.0, 1.0]),
    st.floats(0.0, 1.0),
    st.floats(0.0, 500.0),
    st.booleans(),
)


@st.composite
def runs(draw: st.DrawFn) -> list[TrialRecord]:
    tasks, reps = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    out = []
    for variant in ("base", "treat"):
        for t in range(tasks):
            for r in range(1, reps + 1):
                outcome, acc, frac, latency, flag = draw(trial)
                metrics = {"accuracy": acc, "score": frac, "latency_ms": latency, "passed": flag}
                out.append(_record(variant, f"t{t}", r, outcome, metrics))
    return out


PCT = re.compile(r"(-?\d+(?:\.\d+)?)%")
PP = re.compile(r"([+-]\d+(?:\.\d+)?) pp")


@SETTINGS
@given(runs())
def test_every_interval_of_comparison_json_and_report_md_stays_in_range(records: list[TrialRecord]) -> None:
    c = compare_variants(
        "run_x",
        records,
        ["base", "treat"],
        ["success", "accuracy", "score", "latency_ms", "passed"],
        {"score": "fraction"},
    )
    bounded = {m for m, k in c.metric_kinds.items() if k in ("rate", "fraction")}
    assert "success" in bounded
    assert "passed" in bounded or all(o.outcome == "error" for o in records)  # booleans are rates
    for v in c.variants.values():
        assert 0.0 <= v.success_ci[0] <= v.success_ci[1] <= 1.0
        for m, s in v.metrics.items():
            if m in bounded:
                assert s.ci is not None and 0.0 <= s.ci[0] <= s.ci[1] <= 1.0, (m, s)
    for comp in c.comparisons:
        for m, d in comp.metrics.items():
            if m in bounded:
                assert d.ci is not None and -1.0 <= d.ci[0] <= d.ci[1] <= 1.0, (m, d)
        assert 0.0 <= comp.pass_fail.p_value <= 1.0
    report = report_md(c)
    assert all(0.0 <= float(x) <= 100.0 for x in PCT.findall(report)), report
    assert all(-100.0 <= float(x) <= 100.0 for x in PP.findall(report)), report
