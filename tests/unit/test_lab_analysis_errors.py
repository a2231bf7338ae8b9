"""One rule for errored trials everywhere: not a success — a failure in every success rate and in every
paired test on success — and no value for any other metric. Errors also have a column of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opslab.lab import build_tables, compare
from opslab.lab.analysis import compare_variants
from opslab.lab.records import TrialRecord

TASKS = [f"t{i}" for i in range(6)]


def record(variant: str, task: str, outcome: str, rep: int = 1, **metrics: float) -> TrialRecord:
    return TrialRecord(
        trial_id=f"{variant}.{task}.{rep}",
        variant_id=variant,
        task_id=task,
        replication=rep,
        seed=rep,
        outcome=outcome,  # type: ignore[arg-type]
        metrics=metrics,
        error="harness exited with code 3" if outcome == "error" else None,
    )


def test_a_baseline_that_errors_everywhere_loses_the_paired_test() -> None:
    outputs = [record("base", t, "error") for t in TASKS] + [
        record("treat", t, "success", accuracy=1.0) for t in TASKS
    ]
    c = compare_variants("run", outputs, ["base", "treat"], ["success", "accuracy"])
    pf = c.comparisons[0].pass_fail
    assert (pf.n_tasks, pf.baseline_only, pf.treatment_only) == (6, 0, 6)
    assert pf.p_value == pytest.approx(2 * 0.5**6) and pf.p_value < 0.05
    success = c.comparisons[0].metrics["success"]
    assert success.mean_difference == 1.0 and success.ci is not None and success.ci[0] > 0
    # accuracy has no value for an errored trial: nothing to pair with, so no difference is claimed
    assert "accuracy" not in c.comparisons[0].metrics
    assert (c.comparisons[0].baseline_errors, c.comparisons[0].treatment_errors) == (6, 0)
    base = c.variants["base"]
    assert (base.n, base.successes, base.failures, base.errors) == (6, 0, 0, 6)
    assert base.success_rate == 0.0 and base.error_rate == 1.0 and "accuracy" not in base.metrics


def test_with_replications_errors_are_failures_in_the_sign_test_and_pass_at_k() -> None:
    outputs = [record("base", t, "error", rep) for t in TASKS for rep in (1, 2)]
    outputs += [record("treat", t, "success" if rep == 1 else "error", rep) for t in TASKS for rep in (1, 2)]
    c = compare_variants("run", outputs, ["base", "treat"], ["success"])
    pf = c.comparisons[0].pass_fail
    assert "sign test" in pf.test and pf.treatment_only == 6 and pf.p_value < 0.05
    assert c.variants["treat"].pass_at_k == {"1": 0.5, "2": 1.0}
    assert c.variants["treat"].success_rate == 0.5 and c.variants["treat"].errors == 6


def test_the_tables_and_the_report_follow_the_same_rule(tmp_path: Path) -> None:
    run_dir = tmp_path / "run_1"
    outputs = [
        record("base", "t0", "error", latency_ms=5.0),  # a harness that says "error" and still reports
        record("base", "t1", "failure", latency_ms=7.0),
        record("treat", "t0", "success", latency_ms=3.0),
        record("treat", "t1", "success", latency_ms=4.0),
    ]
    build_tables(run_dir, outputs, ["base", "treat"])
    result = compare(run_dir, outputs, ["base", "treat"], ["success", "latency_ms"])
    tables = run_dir / "analysis" / "tables"
    rows = [json.loads(line) for line in (tables / "metrics_long.jsonl").read_text().splitlines()]
    errored = {(r["metric"], r["value"]) for r in rows if r["trial_id"] == "base.t0.1"}
    assert errored == {("success", 0.0)}
    summary = {r["variant_id"]: r for r in map(json.loads, (tables / "variant_summary.jsonl").open())}
    assert summary["base"]["errors"] == 1 and summary["base"]["failures"] == 1
    assert summary["base"]["success_rate"] == 0.0 and summary["base"]["error_rate"] == 0.5
    assert summary["treat"]["success_ci_low"] == pytest.approx(result["variants"]["treat"]["success_ci"][0])
    assert result["variants"]["base"]["metrics"]["latency_ms"]["n"] == 1
    assert result["comparisons"][0]["baseline_errors"] == 1
    assert "error_rule" in result and result["schema_version"] == 2
    report = (run_dir / "analysis" / "report.md").read_text()
    assert "| variant | n | success | 95% CI | failures | errors |" in report
    assert "| base | 2 | 0.0% |" in report and "Errors: base 1, treat 0." in report
    assert "an errored trial is not a success" in report
