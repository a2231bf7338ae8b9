"""What a canary's verdict says follows what was measured: a regression is called a regression, an
improvement too small or not in every round is called that, and the AB imbalance is the smaller arm's
shortfall from the larger one, naming the arm. Deterministic: seeded latencies, an in-memory target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opslab.canary import CanaryResult, Measurement, imbalance_of, judge_windows, run_canary
from opslab.canary.direction import decide_p95
from opslab.judge import Thresholds
from tests.unit.canary_fakes import FakeTarget, SeededLoad, plan_for

THRESHOLDS = Thresholds(pass_delta_p95_max=-10.0, edge_delta_p95_max=-5.0, max_error_rate=1.0)


def canary(tmp_path: Path, effect: float, **load: float) -> tuple[CanaryResult, str]:
    target = FakeTarget()
    r = run_canary(
        plan_for(),
        target,
        reports_dir=tmp_path / "reports",
        history_path=tmp_path / "history.jsonl",
        window=SeededLoad(target, effect=effect, **load),
    )
    return r, (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()


def windows(arm: str, medians: list[float], n: int = 500, seed: int = 3) -> list[Measurement]:
    rng = np.random.default_rng(seed)
    return [
        Measurement(arm=arm, latencies_ms=list(rng.lognormal(np.log(m), 0.05, n)), sent=n, duration_s=5.0)
        for m in medians
    ]


def test_a_regression_is_described_as_one(tmp_path: Path) -> None:
    r, text = canary(tmp_path, effect=0.52)
    assert r.decision == "FAIL" and not r.applied
    assert r.delta_p95_pct is not None and r.delta_p95_pct > 40
    assert r.reason.startswith(f"regression: B is {r.delta_p95_pct:.1f}% worse than A on P95"), r.reason
    assert f"- Reason: regression: B is {r.delta_p95_pct:.1f}% worse than A on P95" in text
    assert "improvement" not in text and "worthwhile" not in text, text


def test_a_regression_some_round_does_not_show_is_not_called_an_improvement() -> None:
    j = judge_windows(plan_for(), windows("A", [200.0, 200.0]), windows("B", [300.0, 190.0], seed=4))
    assert j.decision == "FAIL" and j.delta_p95_pct > 0 and j.reason.startswith("regression: B is")
    assert any(
        w.startswith("the regression is not in every round: B was not slower in 1 of 2") for w in j.warnings
    )
    assert not any("improvement" in w for w in [j.reason, *j.warnings]), j.warnings


def test_an_improvement_too_small_says_so(tmp_path: Path) -> None:
    r, text = canary(tmp_path, effect=-0.03)
    assert r.decision == "FAIL" and r.delta_p95_pct is not None and -5 < r.delta_p95_pct < 0
    better = f"B is {-r.delta_p95_pct:.1f}% better than A on P95"
    assert r.reason == f"{better}, less than the 5% needed: no worthwhile improvement"
    assert "worse" not in text and "regression" not in text


def test_an_improvement_not_in_every_round_is_inconclusive_and_says_why() -> None:
    j = judge_windows(plan_for(), windows("A", [260.0, 200.0]), windows("B", [200.0, 200.0], seed=4))
    assert j.decision == "EDGE" and j.delta_p95_pct < -10
    assert (
        j.reason.startswith("inconclusive: P95 improved by")
        and "the improvement is not in every round" in j.reason
    )
    assert "regression" not in j.reason and "worse" not in j.reason


def test_an_improvement_in_every_round_passes(tmp_path: Path) -> None:
    r, text = canary(tmp_path, effect=-0.20)
    assert r.decision == "PASS" and r.applied and r.reason.startswith("P95 improved by"), r.reason
    assert not any("every round" in w for w in r.warnings)
    assert "regression" not in text and "worse" not in text


@pytest.mark.parametrize(
    ("delta", "errors", "decision", "words"),
    [
        (52.0, 0.0, "FAIL", "regression: B is 52.0% worse than A on P95 (ΔP95 +52.0%)"),
        (
            -3.0,
            0.0,
            "FAIL",
            "B is 3.0% better than A on P95, less than the 5% needed: no worthwhile improvement",
        ),
        (0.0, 0.0, "FAIL", "B's P95 is the same as A's (ΔP95 +0.0%): no worthwhile improvement"),
        (-7.0, 0.0, "EDGE", "P95 improved by 7.0%: between 5% and 10%, manual review"),
        (-20.0, 0.0, "PASS", "P95 improved by 20.0% (≥10%)"),
        (52.0, 3.0, "FAIL", "error rate 3.00% is not below 1%; B is 52.0% worse than A on P95"),
        (-20.0, 3.0, "FAIL", "error rate 3.00% is not below 1%; B is 20.0% better than A on P95"),
        (float("nan"), 0.0, "FAIL", "ΔP95 could not be computed"),
    ],
)
def test_the_reason_follows_the_direction_of_the_change(
    delta: float, errors: float, decision: str, words: str
) -> None:
    v = decide_p95(delta, errors, THRESHOLDS)
    assert (v.decision, v.reason) == (decision, words)


def test_thresholds_that_accept_a_bounded_slowdown_still_call_it_one() -> None:
    lenient = Thresholds(pass_delta_p95_max=2.0, edge_delta_p95_max=5.0, max_error_rate=1.0)
    assert (
        decide_p95(1.0, 0.0, lenient).reason
        == "B is 1.0% worse than A on P95, within the +2% the thresholds allow"
    )
    edge = decide_p95(4.0, 0.0, lenient)
    assert edge.decision == "EDGE" and edge.reason.endswith(
        "within the +5% the thresholds allow, manual review"
    )


def test_report_mode_calls_a_regression_one(tmp_path: Path) -> None:
    target = FakeTarget(report="ΔP95: +52%\nΔQPS: -1%\nErr%: 0\n")
    r = run_canary(
        plan_for(mode="report"),
        target,
        reports_dir=tmp_path / "reports",
        history_path=tmp_path / "history.jsonl",
    )
    assert r.decision == "FAIL" and r.reason == "regression: B is 52.0% worse than A on P95 (ΔP95 +52.0%)"


def test_the_imbalance_is_the_shortfall_from_the_larger_arm() -> None:
    lost = imbalance_of(1200, 1100)  # 8.3 % of B's samples lost; |a-b|/(a+b) read 4.3 %
    assert lost.pct == pytest.approx(100 * 100 / 1200) and lost.short_arm == "B"
    assert lost.warning(0.03) == (
        "AB imbalance 8.3% > 5%: arm B fell short of arm A (1100 vs 1200 samples; SRM chi-square p=0.03)"
    )
    assert imbalance_of(1100, 1200).short_arm == "A" and imbalance_of(1100, 1200).pct == lost.pct
    assert imbalance_of(1000, 960).warning() is None  # 4 % of the larger arm: under the threshold
    assert imbalance_of(1000, 949).warning() is not None  # 5.1 %
    assert (imbalance_of(0, 0).pct, imbalance_of(0, 0).short_arm) == (0.0, None)
    assert imbalance_of(10, 0).pct == 100.0
    with pytest.raises(ValueError, match="cannot be negative"):
        imbalance_of(-1, 3)


def test_an_arm_losing_8_percent_of_its_samples_is_warned_about_naming_it() -> None:
    rng = np.random.default_rng(5)
    a = [
        Measurement(
            arm="A", latencies_ms=list(rng.lognormal(np.log(200), 0.1, 1200)), sent=1200, duration_s=6
        )
    ]
    b = [
        Measurement(
            arm="B",
            latencies_ms=list(rng.lognormal(np.log(200), 0.1, 1100)),
            errors=100,
            sent=1200,
            duration_s=6,
        )
    ]
    j = judge_windows(plan_for(thresholds={"max_error_rate": 20.0}), a, b)
    assert j.ab_imbalance_pct == pytest.approx(100 / 12)
    assert any(
        w.startswith("AB imbalance 8.3% > 5%: arm B fell short of arm A (1100 vs 1200") for w in j.warnings
    )


def test_the_summary_names_the_arm_that_fell_short(tmp_path: Path) -> None:
    target = FakeTarget()
    plan = plan_for(thresholds={"max_error_rate": 20.0, "pass_delta_p95_max": -10, "edge_delta_p95_max": -5})
    run_canary(
        plan,
        target,
        reports_dir=tmp_path / "reports",
        history_path=tmp_path / "history.jsonl",
        window=SeededLoad(target, effect=0.0, b_error_rate=0.12),
    )
    text = (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()
    assert "- AB Imbalance: " in text and "% (B short of A; SRM chi-square p=" in text
