"""The canary agent, deterministically: an in-memory target (the ``TargetClient`` Protocol) and a window
runner drawing latencies from a seeded NumPy generator, with a known effect whenever the target's flags
are the candidate's. No network, no sleeps, no timing assertions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opslab.canary import (
    CanaryResult,
    Measurement,
    Plan,
    RunRecord,
    Stop,
    judge_windows,
    read_history,
    run_canary,
)
from tests.unit.canary_fakes import BASE, FakeTarget, SeededLoad, plan_for


def canary(
    tmp_path: Path, target: FakeTarget, load: SeededLoad | None = None, plan: Plan | None = None, **kw: Any
) -> CanaryResult:
    return run_canary(
        plan or plan_for(),
        target,
        reports_dir=tmp_path / "reports",
        history_path=tmp_path / "history.jsonl",
        window=load or SeededLoad(target, effect=0.0),
        **kw,
    )


def summary(tmp_path: Path) -> str:
    return (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()


def test_a_20_percent_faster_candidate_passes_and_is_applied(tmp_path: Path) -> None:
    target = FakeTarget()
    load = SeededLoad(target, effect=-0.20)
    r = canary(tmp_path, target, load)
    assert r.decision == "PASS" and r.applied, r.reason
    assert r.judgement is not None and r.judgement.samples == (540, 540)
    assert -22 < (r.delta_p95_pct or 0) < -18
    assert r.judgement.delta_p95_ci[1] < 0 and r.error_rate_pct == 0.0
    assert load.arms == ["warmup", "A", "B", "B", "A"]  # ABBA: a drift over the run falls on both arms
    assert target.flags == plan_for().candidate_flags()
    assert "Decision: PASS" in summary(tmp_path) and len(summary(tmp_path).splitlines()) <= 60
    mini = (tmp_path / "reports" / "LAB_COMBO_REPORT_MINI.txt").read_text()
    assert "ΔP95: -" in mini and "Verdict: PASS" in mini


def test_arm_order_abab_puts_a_first_in_every_round(tmp_path: Path) -> None:
    target = FakeTarget()
    load = SeededLoad(target, effect=-0.20)
    e = plan_for().experiment.model_copy(update={"rounds": 3, "arm_order": "ABAB"})
    canary(tmp_path, target, load, plan=plan_for().model_copy(update={"experiment": e}))
    assert load.arms == ["warmup", "A", "B", "A", "B", "A", "B"]
    e = e.model_copy(update={"arm_order": "ABBA"})
    load = SeededLoad(target, effect=-0.20)
    canary(tmp_path, FakeTarget(), load, plan=plan_for().model_copy(update={"experiment": e}))
    assert load.arms == ["warmup", "A", "B", "B", "A", "A", "B"]


def test_the_ab_imbalance_is_that_of_the_samples_each_p95_is_made_of(tmp_path: Path) -> None:
    # Both arms are sent the same schedule; what differs is what each arm loses. 12 % of B's requests
    # fail (under a 20 % limit, so no early stop): B's p95 rests on fewer samples than A's.
    target = FakeTarget()
    plan = plan_for(thresholds={"max_error_rate": 20.0, "pass_delta_p95_max": -10, "edge_delta_p95_max": -5})
    r = canary(tmp_path, target, SeededLoad(target, effect=0.0, b_error_rate=0.12), plan=plan)
    assert r.judgement is not None and r.judgement.samples[0] == 540 and r.judgement.samples[1] < 490
    assert r.ab_imbalance_pct is not None and r.ab_imbalance_pct > 5
    assert any(w.startswith("AB imbalance") for w in r.warnings)
    assert f"AB Imbalance: {r.ab_imbalance_pct:.1f}%" in summary(tmp_path)
    target = FakeTarget()
    r = canary(tmp_path, target, SeededLoad(target, effect=0.0))
    assert r.ab_imbalance_pct == 0.0 and not any(w.startswith("AB imbalance") for w in r.warnings)


def test_a_7_percent_improvement_is_edge_and_not_applied(tmp_path: Path) -> None:
    target = FakeTarget()
    r = canary(tmp_path, target, SeededLoad(target, effect=-0.07))
    assert r.decision == "EDGE" and not r.applied, r.reason
    assert -10 < (r.delta_p95_pct or 0) < -5
    assert target.flags == BASE


def test_no_effect_fails_and_keeps_the_baseline(tmp_path: Path) -> None:
    target = FakeTarget()
    r = canary(tmp_path, target, SeededLoad(target, effect=0.0))
    assert r.decision == "FAIL" and not r.applied and abs(r.delta_p95_pct or 99) < 5
    assert target.flags == BASE
    assert "Keep current flags" in summary(tmp_path)


def test_two_percent_errors_on_b_fail_a_faster_candidate(tmp_path: Path) -> None:
    target = FakeTarget()
    r = canary(tmp_path, target, SeededLoad(target, effect=-0.20, b_error_rate=0.02))
    assert r.decision == "FAIL" and not r.applied, r.reason
    assert r.early_stop is None and (r.error_rate_pct or 0) >= 1.0 and "error rate" in r.reason
    assert target.flags == BASE


def test_the_health_gate_blocks_before_anything_changes(tmp_path: Path) -> None:
    target = FakeTarget(qdrant=False)
    load = SeededLoad(target, effect=-0.20)
    r = canary(tmp_path, target, load)
    assert r.blocked and r.decision == "FAIL" and "qdrant" in r.reason and not r.applied
    assert target.calls == ["health", "get_flags"] and load.arms == []
    assert "Fix the unhealthy dependencies" in summary(tmp_path)


def test_an_unreachable_target_is_blocked_with_nothing_sent(tmp_path: Path) -> None:
    target = FakeTarget()
    target.down = True
    r = canary(tmp_path, target)
    assert r.blocked and r.decision == "FAIL" and r.reason.startswith("target unreachable")
    assert r.previous_flags == {} and target.calls == ["health"]


def test_errors_on_b_stop_the_run_early_and_restore_a(tmp_path: Path) -> None:
    target = FakeTarget()
    load = SeededLoad(target, effect=-0.20, b_error_rate=0.10)
    r = canary(tmp_path, target, load)
    assert r.decision == "FAIL" and not r.applied
    assert r.early_stop and "well above 1%" in r.early_stop and r.reason.startswith("early stop")
    assert load.arms == ["warmup", "A", "B"]  # the second round never ran
    assert target.flags == BASE and target.calls[-2:] == ["set_flags", "get_flags"]  # restored, read back
    assert "Early stop" in summary(tmp_path)


def test_a_target_that_fails_mid_run_fails_the_canary_and_gets_its_flags_back(tmp_path: Path) -> None:
    target = FakeTarget()
    load = SeededLoad(target, effect=-0.20)
    # The call after the first B window (its health check) fails: a blip; the restore then succeeds.
    load.on_window = lambda n: target.fail_calls.add(len(target.calls) + 1) if n == 3 else None
    r = canary(tmp_path, target, load)
    assert r.decision == "FAIL" and not r.applied
    assert r.early_stop and "target health lost" in r.early_stop and not r.restore_failed
    assert target.flags == BASE


def test_a_target_that_dies_mid_run_fails_and_applies_nothing(tmp_path: Path) -> None:
    target = FakeTarget()
    load = SeededLoad(target, effect=-0.20)
    load.on_window = lambda n: setattr(target, "down", n == 2)  # gone during the first A window
    r = canary(tmp_path, target, load)
    assert r.decision == "FAIL" and not r.applied and r.restore_failed
    assert r.early_stop and r.early_stop.startswith("target failed mid-run")
    assert any("could not restore baseline flags" in w for w in r.warnings)
    assert "Decision: FAIL" in summary(tmp_path)


def test_a_stop_mid_window_restores_a_reads_it_back_and_reports_interrupted(tmp_path: Path) -> None:
    target = FakeTarget()
    cancel = Stop()
    load = SeededLoad(target, effect=-0.20)
    load.on_window = lambda n: cancel.stop("SIGINT") if n == 3 else None  # during the first B window
    r = canary(tmp_path, target, load, cancel=cancel)
    assert r.decision == "INTERRUPTED" and not r.applied and not r.restore_failed
    assert r.interrupted == "SIGINT after 1 of 4 windows"  # the B window cut short does not count
    assert load.arms == ["warmup", "A", "B"] and target.flags == BASE
    assert target.calls[-2:] == ["set_flags", "get_flags"]
    text = summary(tmp_path)
    assert "Decision: INTERRUPTED" in text and "baseline flags restored and verified" in text
    assert RunRecord.of(r).decision == "INTERRUPTED"


def test_the_time_budget_cuts_the_run_and_a_partial_pass_is_only_edge(tmp_path: Path) -> None:
    target = FakeTarget()
    load = SeededLoad(target, effect=-0.20)
    # A clock that advances only by the load sent: 0.75 s warm-up + four 3 s windows = 12.75 s; a fifth
    # window would end past the 13 s budget.
    plan = plan_for(time_budget=13).model_copy(
        update={"experiment": plan_for().experiment.model_copy(update={"rounds": 3})}
    )
    r = canary(tmp_path, target, load, plan=plan, clock=load.clock)
    assert r.partial == "time budget 13s reached after 4 of 6 windows"
    assert r.decision == "EDGE" and r.reason.startswith("inconclusive (partial run)") and not r.applied
    assert load.arms == ["warmup", "A", "B", "B", "A"] and target.flags == BASE


def test_a_pass_is_not_applied_when_apply_on_pass_is_off(tmp_path: Path) -> None:
    target = FakeTarget()
    r = canary(tmp_path, target, SeededLoad(target, effect=-0.20), apply_on_pass=False, sweep_trial=3)
    assert r.decision == "PASS" and not r.applied and r.apply_deferred
    assert target.flags == BASE
    assert "confirmation run decides" in summary(tmp_path)
    assert read_history(tmp_path / "history.jsonl")[-1].sweep_trial == 3


def test_report_mode_judges_the_targets_numbers_without_sending_load(tmp_path: Path) -> None:
    target = FakeTarget(report="RESULTS\n- ΔP95: -12.5%\n- ΔQPS: -0.4%\n- Error Rate: 0.50%\n")
    load = SeededLoad(target, effect=0.0)
    r = canary(tmp_path, target, load, plan=plan_for(mode="report"))
    assert r.decision == "PASS" and r.applied and r.source == "report" and r.delta_p95_pct == -12.5
    assert load.arms == [] and "start_experiment" in target.calls
    assert (tmp_path / "reports" / "LAB_COMBO_REPORT_MINI.txt").read_text() == target.report


def test_report_mode_measures_the_imbalance_when_the_report_has_sample_counts(tmp_path: Path) -> None:
    numbers = "RESULTS\n- ΔP95: -12.5%\n- ΔQPS: -0.4%\n- Error Rate: 0.50%\n"
    target = FakeTarget(report=numbers + "Samples: 1000/1000\n")
    r = canary(tmp_path, target, plan=plan_for(mode="report"))
    assert r.decision == "PASS" and r.ab_imbalance_pct == 0.0 and r.samples == (1000, 1000)
    assert "AB Imbalance: 0.0% (samples 1000/1000, SRM chi-square p=1)" in summary(tmp_path)
    target = FakeTarget(report=numbers + "- Samples A: 1000\n- Samples B: 800\n")
    r = canary(tmp_path, target, plan=plan_for(mode="report"))
    assert r.ab_imbalance_pct == 20.0 and r.srm_p is not None  # B's shortfall: 200 of A's 1000
    assert "AB imbalance 20.0% > 5%: arm B fell short of arm A (800 vs 1000 samples" in " ".join(r.warnings)
    assert r.decision == "EDGE" and "sample-ratio mismatch" in r.reason and not r.applied
    history = read_history(tmp_path / "history.jsonl")[-1]
    assert history.ab_imbalance_pct == r.ab_imbalance_pct and history.samples == (1000, 800)
    target = FakeTarget(report=numbers)  # no counts: nothing to measure, and the summary says n/a
    r = canary(tmp_path, target, plan=plan_for(mode="report"))
    assert r.ab_imbalance_pct is None and "AB Imbalance: n/a" in summary(tmp_path)


def test_a_report_missing_a_number_fails_naming_it(tmp_path: Path) -> None:
    target = FakeTarget(report="ΔP95: -20%\nErr%: 0\n")
    r = canary(tmp_path, target, plan=plan_for(mode="report"))
    assert r.decision == "FAIL" and "ΔQPS" in r.reason and not r.applied and target.flags == BASE


@pytest.mark.parametrize("effect", [-0.20, 0.0])
def test_every_run_appends_one_readable_history_line(tmp_path: Path, effect: float) -> None:
    target = FakeTarget()
    r = canary(tmp_path, target, SeededLoad(target, effect=effect))
    canary(tmp_path, FakeTarget(qdrant=False))
    first, second = read_history(tmp_path / "history.jsonl")
    assert first.schema_version == 3 and first.decision == r.decision and first.applied == r.applied
    assert first.delta_p95_pct == r.delta_p95_pct and first.samples == (540, 540)
    assert first.experiment == plan_for().experiment and first.summary_path == r.summary_path
    assert second.blocked and second.delta_p95_pct is None and second.source is None


def test_a_pass_needs_the_improvement_in_every_round() -> None:
    # Identical arms, but the machine was busy during the first A window (every request 30 % slower):
    # pooled, B looks faster; round by round, only the disturbed round says so.
    rng = np.random.default_rng(11)

    def window(arm: str, median: float) -> Measurement:
        lat = list(rng.lognormal(np.log(median), 0.1, 500))
        return Measurement(arm=arm, latencies_ms=lat, sent=500, duration_s=5.0)

    plan = plan_for()
    j = judge_windows(
        plan, [window("A", 260.0), window("A", 200.0)], [window("B", 200.0), window("B", 200.0)]
    )
    assert j.delta_p95_pct < -10 and j.decision != "PASS"
    assert len(j.delta_p95_by_round) == 2 and j.delta_p95_by_round[0] < -15 < -5 < j.delta_p95_by_round[1]
    assert any("not in every round" in w for w in j.warnings)
    real = judge_windows(
        plan, [window("A", 200.0), window("A", 202.0)], [window("B", 160.0), window("B", 161.0)]
    )
    assert real.decision == "PASS" and all(d < -15 for d in real.delta_p95_by_round), real.reason


class StallingLoad(SeededLoad):
    """``SeededLoad`` whose generator falls 400 ms behind its schedule in the ``stalled`` windows (counted
    from 1, the warm-up first): every request scheduled in that time waits for it."""

    def __init__(self, target: FakeTarget, *, effect: float, stalled: set[int]) -> None:
        super().__init__(target, effect=effect)
        self.stalled = stalled

    def __call__(self, load: Any, *, arm: str, qps: float, seconds: float, **kw: Any) -> Measurement:
        m = super().__call__(load, arm=arm, qps=qps, seconds=seconds, **kw)
        if len(self.arms) not in self.stalled:
            return m
        waited = int(0.4 * qps)  # the requests scheduled during the stall, each late by what remained of it
        late = [x + 400.0 * (1 - i / waited) for i, x in enumerate(m.latencies_ms[:waited])]
        return m.model_copy(update={"latencies_ms": late + m.latencies_ms[waited:], "max_send_lag_ms": 400.0})


def test_a_window_its_own_load_generator_stalled_is_measured_again(tmp_path: Path) -> None:
    target = FakeTarget()
    stalled = StallingLoad(target, effect=-0.20, stalled={4})  # round 2's first window, B (ABBA)
    r = canary(tmp_path, target, stalled)
    assert stalled.arms == ["warmup", "A", "B", "B", "B", "A"]  # the stalled B once more
    assert r.decision == "PASS" and r.applied, r.reason
    assert any("round 2 arm B measured again: the load generator fell 400 ms behind" in w for w in r.warnings)
    assert "measured again" in summary(tmp_path)


def test_a_window_stalled_every_time_is_kept_after_two_more_tries_and_never_applied_unseen(
    tmp_path: Path,
) -> None:
    target = FakeTarget()
    stalled = StallingLoad(target, effect=-0.20, stalled={4, 5, 6})
    r = canary(tmp_path, target, stalled)
    assert stalled.arms == ["warmup", "A", "B", "B", "B", "B", "A"]
    assert sum("measured again" in w for w in r.warnings) == 2
    # What the stalled window measured is judged as measured: its round shows no improvement.
    assert r.decision in ("EDGE", "FAIL") and not r.applied, r.reason


def test_a_generator_that_keeps_up_or_lags_by_little_against_slow_responses_is_not_stalled() -> None:
    slow = Measurement(arm="A", latencies_ms=[900.0] * 100, sent=100, duration_s=1.0, max_send_lag_ms=120.0)
    assert slow.generator_stall(1.8) is None  # 120 ms against a 900 ms p95
    quick = Measurement(arm="A", latencies_ms=[20.0] * 100, sent=100, duration_s=1.0, max_send_lag_ms=30.0)
    assert quick.generator_stall(1.8) is None  # 30 ms: fewer than a 40th of 1.8 s of requests waited
    lagged = quick.model_copy(update={"max_send_lag_ms": 60.0})
    assert lagged.generator_stall(1.8) == "the load generator fell 60 ms behind its schedule (p95 20.0 ms)"
