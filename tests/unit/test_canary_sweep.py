"""The sweep, deterministically: the fake target of canary_fakes and seeded load whose effect
depends on which flags the target runs (FlagDrivenLoad); trials apply nothing, only a confirmed best PASS is
applied."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from opslab.canary import LiveWindow, LoadSpec, Measurement, Space, SweepResult, read_history, run_sweep
from tests.unit.canary_fakes import BASE, MEDIAN_MS, FakeTarget, plan_for


class FlagDrivenLoad:
    """``routing.mode: rules`` serves 20 % faster, every ``topk_threshold`` step above 32 0.5 % slower."""

    def __init__(self, target: FakeTarget) -> None:
        self.target = target
        self.rng = np.random.default_rng(3)

    def __call__(
        self,
        load: LoadSpec,
        *,
        arm: str,
        qps: float,
        seconds: float,
        warmup_s: float = 0.0,
        timeout_s: float = 5.0,
        cancel: threading.Event | None = None,
        live: LiveWindow | None = None,
    ) -> Measurement:
        routing = self.target.flags["routing"]
        assert isinstance(routing, dict)
        factor = 0.8 if routing["mode"] == "rules" else 1.0
        topk = routing["topk_threshold"]
        assert isinstance(topk, int)
        factor *= 1 + 0.005 * (topk - 32)
        n = int(qps * (seconds - warmup_s))
        latencies = self.rng.lognormal(np.log(MEDIAN_MS * factor), 0.1, n)
        return Measurement(arm=arm, latencies_ms=list(latencies), sent=n, duration_s=n / qps)


def sweep(tmp_path: Path, target: FakeTarget, params: dict[str, object], trials: int) -> SweepResult:
    plan = plan_for(experiment={**plan_for().experiment.model_dump(), "routing_mode": "default", "rounds": 1})
    space = Space.model_validate({"params": params})
    space.check(plan.experiment)
    return run_sweep(
        plan,
        space,
        target,
        trials=trials,
        reports_dir=tmp_path / "reports",
        history_path=tmp_path / "history.jsonl",
        window=FlagDrivenLoad(target),
    )


def test_a_sweep_applies_only_its_confirmed_best_pass(tmp_path: Path) -> None:
    target = FakeTarget()
    space = {"routing_mode": {"choices": ["rules"]}, "topk_threshold": {"choices": [12, 28]}}  # −24 %, −22 %
    r = sweep(tmp_path, target, space, 3)
    assert {row.decision for row in r.trials} == {"PASS"} and not any(row.applied for row in r.trials)
    best = min(r.trials, key=lambda row: row.objective)
    assert r.best is not None and r.best.trial == best.trial
    assert r.confirmation is not None and r.confirmation.applied and r.applied
    routing = {"mode": "rules", "topk_threshold": best.params["topk_threshold"]}
    assert target.flags["routing"] == routing and r.applied_flags == target.flags
    rows = read_history(tmp_path / "history.jsonl")
    assert [row.sweep_trial for row in rows] == [1, 2, 3, None]
    assert rows[-1].sweep_confirmation_of == best.trial
    assert [row.applied for row in rows] == [False, False, False, True]
    assert "flags applied" in (tmp_path / "reports" / "CANARY_SWEEP.md").read_text()


def test_a_sweep_without_a_pass_changes_nothing(tmp_path: Path) -> None:
    target = FakeTarget()
    r = sweep(tmp_path, target, {"topk_threshold": {"low": 48, "high": 64, "step": 16}}, 2)  # +8 %, +16 %
    assert {row.decision for row in r.trials} == {"FAIL"}
    assert r.best is None and r.confirmation is None and not r.applied and r.applied_flags is None
    assert target.flags == BASE
    assert "nothing applied" in (tmp_path / "reports" / "CANARY_SWEEP.md").read_text()
    assert all(row.objective == row.delta_p95_pct and row.objective > 5 for row in r.trials)


def test_a_blocked_target_stops_the_sweep_at_once(tmp_path: Path) -> None:
    r = sweep(tmp_path, FakeTarget(qdrant=False), {"routing_mode": {"choices": ["rules", "default"]}}, 4)
    assert len(r.trials) == 1 and r.stopped and "health gate" in r.stopped and not r.applied
