"""`opslab lab` as a user runs it: JSON envelopes, refusals, kill -9 then --resume, --retry-errors."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURES
from tests.e2e.conftest import OPSLAB, clean_env, run_cli
from tests.processes import boot_clock, describe, identity, left_behind, parent_of, running, started


def lab(*args: str, cwd: Path) -> tuple[int, dict[str, Any]]:
    r = run_cli("lab", *args, "--json", env=clean_env(), cwd=cwd, timeout=300)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line of JSON: {r.stdout!r} {r.stderr[-500:]}"
    return r.returncode, json.loads(lines[0])


def project(tmp_path: Path, **design: Any) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(FIXTURES / "lab" / "proj", dest)
    exp = yaml.safe_load((dest / ".lab" / "experiment.yaml").read_text())
    exp["variants"]["treatments"] = []
    exp["design"].update(design)
    (dest / ".lab" / "experiment.yaml").write_text(yaml.safe_dump(exp))
    return dest


def test_init_describe_and_clean(tmp_path: Path) -> None:
    code, out = lab("init", cwd=tmp_path)
    assert code == 0 and out == {
        "ok": True,
        "command": "init",
        "path": ".lab/experiment.yaml",
        "launcher": "./lab",
    }
    assert "REQUIRED" in (tmp_path / ".lab" / "experiment.yaml").read_text()
    code, out = lab("init", cwd=tmp_path)
    assert code != 0 and out["ok"] is False and out["error"]["code"] == "invalid_input"
    proj = project(tmp_path, replications=2)
    code, out = lab("describe", ".lab/experiment.yaml", cwd=proj)
    s = out["summary"]
    assert code == 0 and s["total_trials"] == 6 and s["harness_script_exists"] is True
    assert s["harness_script_resolved"] == str(proj / "harness.py") and s["network_mode"] == "full"
    assert s["sandbox_mode"] == "local"
    code, out = lab("clean", "--runs", cwd=proj)
    assert code == 0 and out["ok"]


def test_bad_config_and_refusals_are_enveloped(tmp_path: Path) -> None:
    proj = project(tmp_path)
    exp_path = proj / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(exp_path.read_text())
    exp["design"]["replications"] = 0
    exp["runtime"]["network"]["mode"] = "sideways"
    exp_path.write_text(yaml.safe_dump(exp))
    code, out = lab("describe", ".lab/experiment.yaml", cwd=proj)
    fields = {e["field"] for e in out["error"]["details"]["errors"]}
    assert code == 2 and {"design.replications", "runtime.network.mode"} <= fields
    exp["design"]["replications"] = 1
    exp["runtime"]["network"]["mode"] = "full"
    exp_path.write_text(yaml.safe_dump(exp))
    code, out = lab("run-experiment", ".lab/experiment.yaml", cwd=proj)
    assert (
        code != 0 and out["error"]["code"] == "policy_violation" and "network.mode" in out["error"]["message"]
    )
    code, out = lab("run-dev", ".lab/experiment.yaml", cwd=proj)
    assert code != 0 and "container" in out["error"]["message"]
    code, out = lab("describe", "nope.yaml", cwd=proj)
    assert code == 2 and out["ok"] is False


def test_kill_9_then_resume_runs_every_trial_exactly_once(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    # The fixture's 2 s trial timeout is for its hanging harness; a 0.4 s trial on a busy CI host can pass it.
    proj = project(tmp_path, replications=8, random_seed=3, trial_timeout_s=60)
    exp_path = proj / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(exp_path.read_text())
    exp["variants"]["baseline"]["bindings"] = {"mode": "slow", "sleep": 0.4, "ledger": str(ledger)}
    exp_path.write_text(yaml.safe_dump(exp))
    proc = subprocess.Popen(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--concurrency", "2", "--json"],
        cwd=proj,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its pool's workers share its session: found again after the kill
    )
    run_dir = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = list((proj / ".lab" / "runs").glob("*/trials/*/trial_output.json"))
        if len(runs) >= 6:
            run_dir = runs[0].parents[2]
            break
        time.sleep(0.05)
    killed_at = boot_clock()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_dir is not None
    finished_before = {p.parent.name for p in run_dir.glob("trials/*/trial_output.json")}
    assert 6 <= len(finished_before) < 24
    # Whatever the kill orphaned (pool workers, harnesses) ends: then no trial can start any more.
    deadline = time.monotonic() + 60
    while left := left_behind(proc.pid, proj, stopped_at=killed_at):
        assert time.monotonic() < deadline, f"processes outlived the killed runner: {describe(left)}"
        time.sleep(0.05)
    code, out = lab("run", ".lab/experiment.yaml", "--resume", run_dir.name, cwd=proj)
    assert code == 0 and out["run"]["run_id"] == run_dir.name and out["run"]["total_trials"] == 24
    rows = [json.loads(line) for line in (run_dir / "analysis/tables/trials.jsonl").read_text().splitlines()]
    assert sorted(r["trial_id"] for r in rows) == sorted(f"trial_{i}" for i in range(1, 25))
    starts = [line.split()[1] for line in ledger.read_text().splitlines() if line.startswith("start")]
    for trial_id in finished_before:
        assert starts.count(trial_id) == 1, f"{trial_id} finished before the kill and ran again"
    assert all(r["outcome"] == "success" for r in rows), [(r["trial_id"], r["outcome"]) for r in rows]


def _held_run(tmp_path: Path, concurrency: int) -> tuple[Path, Path, Path, subprocess.Popen[bytes]]:
    """A run whose harnesses wait on a hold file, started in the background; returns when two have."""
    ledger, hold = tmp_path / "ledger.txt", tmp_path / "hold"
    hold.touch()
    proj = project(tmp_path, replications=4, trial_timeout_s=60)
    exp_path = proj / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(exp_path.read_text())
    exp["variants"]["baseline"]["bindings"] = {"ledger": str(ledger), "hold": str(hold)}
    exp_path.write_text(yaml.safe_dump(exp))
    runner = subprocess.Popen(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--concurrency", str(concurrency), "--json"],
        cwd=proj,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ledger.exists() and ledger.read_text().count("start ") >= min(2, concurrency):
            break
        time.sleep(0.05)
    run_dir = next((proj / ".lab" / "runs").iterdir())
    return proj, run_dir, hold, runner


@pytest.mark.parametrize(
    "concurrency", [1, 2, 8], ids=["runner-threads", "worker-processes", "threaded-workers"]
)
def test_kill_9_of_the_runner_takes_its_harnesses_down(tmp_path: Path, concurrency: int) -> None:
    proj, run_dir, hold, runner = _held_run(tmp_path, concurrency)
    harnesses = [started(line.split()) for line in (tmp_path / "ledger.txt").read_text().splitlines()]
    assert harnesses and all(running(h) for h in harnesses)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 60
    while any(running(h) for h in harnesses) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [h[0] for h in harnesses if running(h)]
    assert not left, f"a harness outlived the runner that started it: {describe(left)}"
    hold.unlink()
    code, out = lab("run", ".lab/experiment.yaml", "--resume", run_dir.name, cwd=proj)
    assert code == 0 and out["run"]["total_trials"] == 12 and out["run"]["outcomes"] == {"success": 12}


def test_a_worker_told_many_times_that_its_runner_died_still_takes_its_harness_down(tmp_path: Path) -> None:
    # The runner's death signal reaches a worker once for each of the runner's threads that dies: a burst.
    # A handler run again inside itself once waited for its own lock for ever, and the harness ran on.
    proj, run_dir, hold, runner = _held_run(tmp_path, 2)
    try:
        harnesses = [started(line.split()) for line in (tmp_path / "ledger.txt").read_text().splitlines()]
        pid = parent_of(harnesses[0][0])
        assert pid is not None and pid != runner.pid and parent_of(pid) == runner.pid
        worker = identity(pid)
        for _ in range(300):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while (running(harnesses[0]) or running(worker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(harnesses[0]), f"the worker's harness outlived it: {describe([harnesses[0][0]])}"
        assert not running(worker), f"the worker did not end: {describe([pid])}"
    finally:
        hold.unlink()
        runner.kill()
        runner.wait()


def test_a_second_runner_on_the_same_run_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    proj, run_dir, hold, runner = _held_run(tmp_path, 2)
    try:
        code, out = lab("run", ".lab/experiment.yaml", "--resume", run_dir.name, cwd=proj)
        assert code == 5 and out["error"]["code"] == "conflict"
        assert str(runner.pid) in out["error"]["message"] and "--resume" in out["error"]["message"]
    finally:
        hold.unlink()
    assert runner.wait(timeout=60) == 0
    code, out = lab("run", ".lab/experiment.yaml", "--resume", run_dir.name, cwd=proj)
    assert code == 0 and out["run"]["outcomes"] == {"success": 12}


def test_resume_of_an_id_that_cannot_exist_is_not_found(tmp_path: Path) -> None:
    proj = project(tmp_path)
    for bad in ("x" * 300, "../../etc", "run/../x"):
        code, out = lab("run", ".lab/experiment.yaml", "--resume", bad, cwd=proj)
        assert code == 4 and out["error"]["code"] == "not_found", (bad, out)


def test_retry_errors_reruns_only_errored_trials(tmp_path: Path) -> None:
    proj = project(tmp_path)
    exp_path = proj / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(exp_path.read_text())
    exp["variants"]["treatments"] = [{"id": "crash", "bindings": {"mode": "crash"}}]
    exp_path.write_text(yaml.safe_dump(exp))
    code, out = lab("run", ".lab/experiment.yaml", cwd=proj)
    assert code == 0 and out["run"]["outcomes"] == {"success": 3, "error": 3}
    run_id = out["run"]["run_id"]
    code, out = lab("run", ".lab/experiment.yaml", "--resume", run_id, "--retry-errors", cwd=proj)
    manifest = json.loads((proj / ".lab" / "runs" / run_id / "manifest.json").read_text())
    assert code == 0 and out["run"]["retried"] == 3 and len(manifest["retries"]) == 3
    assert all("exited with code 3" in r["previous_error"] for r in manifest["retries"])
    code, out = lab("run", ".lab/experiment.yaml", "--retry-errors", cwd=proj)
    assert code == 2 and "--resume" in out["error"]["message"]


def test_knobs_init_validate_and_run_with_overrides(tmp_path: Path) -> None:
    proj = project(tmp_path, replications=1)
    code, out = lab("knobs-init", cwd=proj)
    assert code == 0 and out["paths"] == [".lab/knobs/manifest.json", ".lab/knobs/overrides.json"]
    code, out = lab("knobs-init", cwd=proj)
    assert code == 2 and out["error"]["details"]["errors"][0]["field"] == "--force"
    overrides = proj / ".lab" / "knobs" / "overrides.json"
    doc = json.loads(overrides.read_text())
    doc["values"] = {"design.replications": 2, "design.random_seed": 7}
    overrides.write_text(json.dumps(doc))
    code, out = lab("knobs-validate", cwd=proj)
    assert code == 0 and out["values"] == {"design.replications": 2, "design.random_seed": 7}
    assert out["pointers_checked"] is True and "dataset.limit" in out["knobs"]
    code, out = lab("describe", ".lab/experiment.yaml", "--overrides", str(overrides), cwd=proj)
    assert code == 0 and out["summary"]["total_trials"] == 6 and out["summary"]["replications"] == 2

    doc["values"] = {"design.replications": 0}
    overrides.write_text(json.dumps(doc))
    code, out = lab("knobs-validate", cwd=proj)
    assert code == 2 and out["error"]["details"]["errors"][0]["field"] == "values.design.replications"
    assert "minimum" in out["error"]["message"]
    manifest = proj / ".lab" / "knobs" / "manifest.json"
    bad = json.loads(manifest.read_text())
    bad["knobs"][0]["type"] = "float"
    bad["knobs"].append({"id": "ghost", "json_pointer": "/nowhere/x", "type": "integer"})
    manifest.write_text(json.dumps(bad))
    code, out = lab("knobs-validate", cwd=proj)
    assert code == 2 and out["error"]["details"]["errors"][0]["field"] == "knobs[0].type"
    bad["knobs"][0]["type"] = "integer"
    manifest.write_text(json.dumps(bad))
    doc["values"] = {}
    overrides.write_text(json.dumps(doc))
    code, out = lab("knobs-validate", cwd=proj)
    assert code == 2 and out["error"]["details"]["errors"][0]["field"] == "ghost.json_pointer"
