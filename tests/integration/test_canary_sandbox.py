"""End-to-end canary runs against the real sandbox target with real open-loop load (short windows): they
prove the wiring (HTTP target, load generator, sandbox, job, sweep); the verdict logic, early stops,
cancellation and restores are covered deterministically in tests/unit/test_canary_agent.py."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab.canary import CanaryResult, HttpTarget, SweepResult, parse_plan, read_history, run_canary
from tests.canary_support import (
    judged_as_an_improvement,
    judged_as_no_effect,
    reached_every_round,
    served_delta_pct,
)
from tests.e2e.conftest import OPSLAB, wait_http
from tests.ports import free_port

BASE_FLAGS = {
    "control": {"flow_policy": "static", "target_p95": 1200},
    "routing": {"mode": "default", "topk_threshold": 32},
}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[str]:
    """`opslab sandbox up` as its own process (the load generator must not share its event loop), with a
    narrow distribution well above the client's own overhead so 2 s windows measure a 7% effect."""
    proc, url = start_sandbox(tmp_path)
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def start_sandbox(tmp_path: Path, median_ms: int = 200) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (tmp_path / "sandbox.log").open("wb")
    proc = subprocess.Popen(
        [
            OPSLAB,
            "sandbox",
            "up",
            "--only",
            "target",
            "--traffic-rps",
            "0",
            "--port",
            str(port),
            "--seed",
            "7",
            "--base-median-ms",
            str(median_ms),
            "--sigma",
            "0.1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/api/lab/config", proc, tmp_path / "sandbox.log")
    return proc, url


def plan_for(url: str, **candidate: Any) -> Any:
    exp = {
        # 70 QPS over 2.5 s windows (350 samples an arm, enough for zero errors to bound the rate under 1 %):
        # at 100 QPS the sandbox itself queued requests on a busy machine, and that queueing, the same in
        # both arms, diluted a −20 % candidate to −4.6 % as the client measured it.
        "qps": 70.0,
        "window_sec": 2.5,
        "rounds": 2,
        "flow_policy": "static",
        "target_p95": 1200,
        "routing_mode": "default",
        "topk_threshold": 32,
        **candidate,
    }
    return parse_plan(
        {
            "experiment": exp,
            "target": {"base_url": url},
            "time_budget": 60,
            "seed": 1,
            "min_samples_per_arm": 100,
        }
    )


def canary(url: str, tmp_path: Path, **candidate: Any) -> CanaryResult:
    httpx.post(f"{url}/api/flags", json=BASE_FLAGS, timeout=30).raise_for_status()
    target = HttpTarget(plan_for(url, **candidate).target)
    try:
        return run_canary(
            plan_for(url, **candidate),
            target,
            reports_dir=tmp_path / "reports",
            history_path=tmp_path / "data" / "canary" / "history.jsonl",
        )
    finally:
        target.close()


def test_a_real_20_percent_improvement_passes_and_is_applied(sandbox: str, tmp_path: Path) -> None:
    r = canary(sandbox, tmp_path, routing_mode="rules", topk_threshold=20)  # 0.85 × 0.94 ≈ −20%
    passed = judged_as_an_improvement(r.decision, r.applied, r.delta_p95_pct, r.reason)
    # −20 % as the target times itself; the client's figure is the same effect plus its own delays.
    assert -25 < served_delta_pct(r.windows) < -15 and (r.error_rate_pct or 0) < 1, r.windows
    flags = httpx.get(f"{sandbox}/api/flags", timeout=30).json()
    want = {"mode": "rules", "topk_threshold": 20} if passed else BASE_FLAGS["routing"]
    assert flags["routing"] == want
    summary = (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()
    assert f"Decision: {r.decision}" in summary and len(summary.splitlines()) <= 60
    assert (tmp_path / "reports" / "LAB_COMBO_REPORT_MINI.txt").exists()
    assert read_history(tmp_path / "data" / "canary" / "history.jsonl")[-1].decision == r.decision


def test_no_effect_fails(sandbox: str, tmp_path: Path) -> None:
    r = canary(sandbox, tmp_path)
    # No effect: a FAIL, or an EDGE when a busy machine's delays made a window read as an improvement; only
    # if the run itself measured B faster in every round may it judge that (canary_support).
    judged_as_no_effect(r.decision, r.applied, r.reason, r.windows)
    if not r.applied:
        assert httpx.get(f"{sandbox}/api/flags", timeout=30).json() == BASE_FLAGS


def test_errors_fail_and_stop_early(sandbox: str, tmp_path: Path) -> None:
    httpx.post(f"{sandbox}/api/sandbox/faults", json={"error_rate": 0.02}, timeout=30).raise_for_status()
    r = canary(sandbox, tmp_path, routing_mode="rules", topk_threshold=20)
    assert r.decision == "FAIL" and not r.applied
    assert r.early_stop or (r.error_rate_pct or 0) >= 1.0
    assert httpx.get(f"{sandbox}/api/flags", timeout=30).json() == BASE_FLAGS


def test_unhealthy_dependency_blocks_before_any_change(sandbox: str, tmp_path: Path) -> None:
    httpx.post(f"{sandbox}/api/sandbox/health", json={"qdrant": False}, timeout=30).raise_for_status()
    r = canary(sandbox, tmp_path, routing_mode="rules")
    assert r.blocked and r.decision == "FAIL" and "qdrant" in r.reason
    assert httpx.get(f"{sandbox}/api/flags", timeout=30).json() == BASE_FLAGS
    assert "Fix the unhealthy dependencies" in (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()


def test_canary_runs_as_a_job_through_the_api(sandbox: str, tmp_path: Path) -> None:
    from opslab.api import create_app
    from opslab.config import Settings
    from opslab.serving import ServerThread

    httpx.post(f"{sandbox}/api/flags", json=BASE_FLAGS, timeout=30).raise_for_status()
    plan = plan_for(sandbox, routing_mode="rules", topk_threshold=20).model_dump(mode="json")
    plan["experiment"].update(qps=80.0, window_sec=1.5, rounds=1)
    plan["min_samples_per_arm"] = 50
    with (
        ServerThread(create_app(Settings(data_dir=tmp_path / "svc"))) as server,
        httpx.Client(base_url=server.url, timeout=60) as api,
    ):
        bad = api.post(
            "/canary/runs", json={"plan": {**plan, "experiment": {**plan["experiment"], "qps": -1}}}
        )
        assert bad.status_code == 422 and "experiment.qps" in bad.json()["error"]["message"]
        created = api.post("/canary/runs", json={"plan": plan})
        assert created.status_code == 202
        run_id = created.json()["canary_run_id"]
        with api.stream("GET", f"/canary/runs/{run_id}/stream") as r:
            steps = [line for line in r.iter_lines() if line.startswith("data:")]
        assert '"done"' in steps[-1]
        body = api.get(f"/canary/runs/{run_id}").json()
        assert body["status"] == "done" and body["result"]["decision"] in ("PASS", "EDGE", "FAIL")
        assert body["result"]["measured"] is True and body["result"]["source"] == "load"
        keys = {
            "decision",
            "reason",
            "delta_p95_pct",
            "delta_p95_ci",
            "error_rate_pct",
            "applied",
            "summary_path",
        }
        assert set(body["result"]) >= keys and Path(body["result"]["summary_path"]).is_file()
        dry = api.post("/canary/runs", json={"plan": plan, "dry_run": True}).json()["canary_run_id"]
        with api.stream("GET", f"/canary/runs/{dry}/stream") as r:
            assert '"done"' in [line for line in r.iter_lines() if line.startswith("data:")][-1]
        result = api.get(f"/canary/runs/{dry}").json()["result"]
        assert result["decision"] == "DRY-RUN" and result["would"][0].startswith("check health")
        assert api.get("/canary/runs/nope").status_code == 404
    assert (tmp_path / "svc" / "canary" / "history.jsonl").exists()


def sweep(url: str, tmp_path: Path, params: dict[str, Any], trials: int) -> SweepResult:
    from opslab.canary import Space, run_sweep

    httpx.post(f"{url}/api/flags", json=BASE_FLAGS, timeout=30).raise_for_status()
    plan = plan_for(url).model_copy(update={"time_budget": 30})
    # One round of 3.5 s windows at 100 QPS: 315 counted requests an arm, enough for a PASS to show its
    # error rate is under 1 % (the one-sided 95 % Wilson bound of 0 in 315 is 0.85 %).
    experiment = plan.experiment.model_copy(update={"rounds": 1, "window_sec": 3.5, "qps": 100.0})
    plan = plan.model_copy(update={"experiment": experiment})
    space = Space.model_validate({"params": params})
    space.check(plan.experiment)
    target = HttpTarget(plan.target)
    try:
        return run_sweep(
            plan,
            space,
            target,
            trials=trials,
            reports_dir=tmp_path / "reports",
            history_path=tmp_path / "history.jsonl",
        )
    finally:
        target.close()


@pytest.fixture
def slow_sandbox(tmp_path: Path) -> Iterator[str]:
    """A target whose median is 800 ms: a −20 % change is 160 ms, far beyond what a stall of a busy
    machine's scheduler adds to a window's p95, so a sweep's single rounds judge its points robustly."""
    proc, url = start_sandbox(tmp_path, median_ms=800)
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_a_sweep_applies_only_its_confirmed_best_pass(slow_sandbox: str, tmp_path: Path) -> None:
    # Both points are large real improvements (−20 % and −24 %): each is a PASS on a quiet machine, never
    # applied by itself; the best is run again and only that confirmation's PASS is applied. A round a
    # busy machine stalled (canary_support.reached_every_round) may hide the improvement from one of the
    # runs: then it may judge what it measured, and nothing but a confirmed PASS is applied.
    sandbox = slow_sandbox
    r = sweep(
        sandbox,
        tmp_path,
        {"routing_mode": {"choices": ["rules"]}, "topk_threshold": {"choices": [12, 20]}},
        2,
    )
    rows = read_history(tmp_path / "history.jsonl")
    assert [row.sweep_trial for row in rows[:2]] == [1, 2] and not any(row.applied for row in rows[:2])
    assert not any(row.applied for row in r.trials)
    for row in rows[:2]:
        if reached_every_round(row.windows):
            assert row.decision == "PASS" and (row.delta_p95_pct or 0) < 0, row.reason
    passes = [row for row in r.trials if row.decision == "PASS"]
    if not passes:
        assert r.best is None and r.confirmation is None and not r.applied and len(rows) == 2
        assert httpx.get(f"{sandbox}/api/flags", timeout=30).json()["routing"] == BASE_FLAGS["routing"]
        return
    best = min(passes, key=lambda row: row.delta_p95_pct or 0)
    assert r.best is not None and r.best.trial == best.trial
    confirm = rows[-1]
    assert len(rows) == 3 and confirm.sweep_trial is None and confirm.sweep_confirmation_of == best.trial
    passed = judged_as_an_improvement(
        confirm.decision, confirm.applied, confirm.delta_p95_pct, confirm.reason, confirm.windows
    )
    assert r.confirmation is not None and r.confirmation.decision == confirm.decision
    assert r.applied is passed and r.confirmation.applied is passed
    flags = httpx.get(f"{sandbox}/api/flags", timeout=30).json()
    applied = {"mode": "rules", "topk_threshold": best.params["topk_threshold"]}
    want = applied if passed else BASE_FLAGS["routing"]
    assert flags["routing"] == want
    report = (tmp_path / "reports" / "CANARY_SWEEP.md").read_text()
    assert ("flags applied" if passed else "nothing applied") in report
    assert (tmp_path / "reports" / "sweep" / "trial_1" / "LABOPS_AGENT_SUMMARY.txt").is_file()


def test_report_mode_judges_the_targets_own_experiment(sandbox: str, tmp_path: Path) -> None:
    assert httpx.get(f"{sandbox}/api/lab/report?mini=1", timeout=30).status_code == 404  # nothing has run yet
    httpx.post(f"{sandbox}/api/flags", json=BASE_FLAGS, timeout=30).raise_for_status()
    plan = plan_for(sandbox, routing_mode="rules", topk_threshold=20).model_copy(update={"mode": "report"})
    target = HttpTarget(plan.target)
    try:
        r = run_canary(plan, target, reports_dir=tmp_path / "reports", history_path=tmp_path / "h.jsonl")
    finally:
        target.close()
    # The verdict is the target's own figure against the plan's thresholds, and only a PASS is applied.
    # The figure is the target's: it loads itself in its own process, so on a busy machine its queueing
    # can hide a real -20 % (seen: +1.8 %); what is checked is that the canary follows its report.
    assert r.source == "report" and r.delta_p95_pct is not None, r.reason
    assert r.decision in ("PASS", "EDGE", "FAIL") and r.applied == (r.decision == "PASS"), r.reason
    if r.decision == "PASS":
        assert r.delta_p95_pct <= plan.thresholds.pass_delta_p95_max, r.reason
    if r.delta_p95_pct > plan.thresholds.edge_delta_p95_max:
        assert r.decision == "FAIL", r.reason
    assert "POST /api/lab/run" in target.calls and not any("/api/search" in c for c in target.calls)
    mini = httpx.get(f"{sandbox}/api/lab/report?mini=1", timeout=30).text
    assert (tmp_path / "reports" / "LAB_COMBO_REPORT_MINI.txt").read_text() == mini
    summary = (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()
    assert "Source: the target's report" in summary and "no per-request samples" in summary
    routing = httpx.get(f"{sandbox}/api/flags", timeout=30).json()["routing"]
    assert routing == ({"mode": "rules", "topk_threshold": 20} if r.applied else BASE_FLAGS["routing"])


def test_report_mode_without_a_report_fails_within_the_budget(sandbox: str, tmp_path: Path) -> None:
    plan = plan_for(sandbox, routing_mode="rules").model_copy(update={"mode": "report", "time_budget": 1.5})
    plan = plan.model_copy(update={"target": plan.target.model_copy(update={"experiment_path": None})})
    target = HttpTarget(plan.target)
    try:
        r = run_canary(plan, target, reports_dir=tmp_path / "reports", history_path=tmp_path / "h.jsonl")
    finally:
        target.close()
    assert r.decision == "FAIL" and "time budget" in r.reason and not r.applied


def test_a_target_that_dies_mid_run_fails_the_canary_and_nothing_is_applied(tmp_path: Path) -> None:
    proc, url = start_sandbox(tmp_path)
    try:
        httpx.post(f"{url}/api/flags", json=BASE_FLAGS, timeout=30).raise_for_status()
        plan = plan_for(url, routing_mode="rules", topk_threshold=20)
        target = HttpTarget(plan.target)
        killer = threading.Timer(
            1.5, lambda: os.killpg(proc.pid, signal.SIGKILL)
        )  # during the first A window
        killer.start()
        try:
            r = run_canary(plan, target, reports_dir=tmp_path / "reports", history_path=tmp_path / "h.jsonl")
        finally:
            killer.cancel()
            target.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert r.decision == "FAIL" and not r.applied, r.reason
    assert "target" in r.reason or "no successful requests" in r.reason
    assert any("restore" in w for w in r.warnings) or r.early_stop
    assert "Decision: FAIL" in (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()
