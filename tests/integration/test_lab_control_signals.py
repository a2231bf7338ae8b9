"""The CLI's runner stopped by SIGINT and SIGTERM mid-run, and paused and resumed, as a real subprocess:
harnesses killed, nothing half-recorded, the envelope and the manifest saying what happened, and the run
continuing where it stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslab.lab import held_slots
from tests.conftest import FIXTURES
from tests.e2e.conftest import OPSLAB, clean_env
from tests.integration.test_lab_control_derived import cli
from tests.processes import boot_clock, describe, left_behind, running, started

TRIALS = 12  # 3 tasks x 4 replications


def held_project(tmp_path: Path, sleep: float, hold: Path | None = None) -> tuple[Path, Path]:
    """The fixture project with 12 slow trials writing a ledger; with ``hold``, a trial that starts while
    that file exists waits until it is gone (the test decides when the run may go on)."""
    proj = tmp_path / "proj"
    shutil.copytree(FIXTURES / "lab" / "proj", proj)
    exp_path = proj / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(exp_path.read_text())
    ledger = tmp_path / "ledger.txt"
    bindings: dict[str, Any] = {"mode": "slow", "sleep": sleep, "ledger": str(ledger)}
    if hold is not None:
        bindings["hold"] = str(hold)
    exp["variants"] = {"baseline": {"id": "slow", "bindings": bindings}}
    exp["design"].update(replications=4, trial_timeout_s=60)
    exp_path.write_text(yaml.safe_dump(exp))
    return proj, ledger


def start_runner(proj: Path, concurrency: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--concurrency", str(concurrency), "--json"],
        cwd=proj,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its pool's workers share its session (left_behind finds them)
    )


def wait_for(what: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def recorded(proj: Path) -> set[str]:
    return {p.parent.name for p in (proj / ".lab" / "runs").glob("*/trials/*/trial_output.json")}


def ledger_of(ledger: Path) -> tuple[list[str], list[str], list[tuple[int, int]]]:
    """The trials started and ended, and each started harness's ``identity`` (its pid and start time)."""
    lines = [line.split() for line in ledger.read_text().splitlines()] if ledger.exists() else []
    starts = [x[1] for x in lines if x[0] == "start"]
    ends = [x[1] for x in lines if x[0] == "end"]
    return starts, ends, [started(x) for x in lines if x[0] == "start"]


def envelope(runner: subprocess.Popen[str]) -> tuple[int, dict[str, Any]]:
    out, err = runner.communicate(timeout=60)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line of JSON: {out!r} {err[-800:]}"
    return runner.returncode, json.loads(lines[0])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
# On 2 cores, 2: a worker process per core; 8: worker processes of four threads each, whose harness killed
# by the stop must not be recorded by the thread that ran it while another thread's handler exits.
@pytest.mark.parametrize(
    "concurrency", [1, 2, 8], ids=["runner-threads", "worker-processes", "threaded-workers"]
)
def test_a_signal_stops_the_run_kills_its_harnesses_and_resume_finishes_it(
    tmp_path: Path, sig: signal.Signals, concurrency: int
) -> None:
    proj, ledger = held_project(tmp_path, sleep=0.4)
    runner = start_runner(proj, concurrency)
    wait_for(lambda: len(recorded(proj)) >= 2 and len(ledger_of(ledger)[0]) > len(recorded(proj)))
    runner.send_signal(sig)
    code, out = envelope(runner)
    stopped_at = boot_clock()
    run_dir = next((proj / ".lab" / "runs").iterdir())
    assert code == 130 and out["ok"] is False and out["command"] == "run"
    error = out["error"]
    assert error["code"] == "interrupted" and error["details"]["signal"] == sig.name
    assert error["details"]["status"] == "interrupted" and error["details"]["run_id"] == run_dir.name
    assert f"--resume {run_dir.name}" in error["message"]
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"

    starts, ends, harnesses = ledger_of(ledger)
    left = [h[0] for h in harnesses if running(h)]
    assert not left, f"a harness outlived the interrupted runner: {describe(left)}"
    before = recorded(proj)
    assert before <= set(ends), "a killed harness's trial was recorded"
    assert len(before) < TRIALS
    assert not list(run_dir.glob("trials/.interrupted-*"))
    # The runner and its pool are gone and no harness of theirs is alive: no trial can start any more.
    wait_for(lambda: not left_behind(runner.pid, proj, stopped_at=stopped_at))
    assert ledger_of(ledger)[0] == starts, "a trial started after the runner stopped"

    code, out = cli("run", ".lab/experiment.yaml", "--resume", run_dir.name, cwd=proj)
    assert code == 0 and out["run"]["status"] == "completed" and out["run"]["outcomes"] == {"success": TRIALS}
    starts_after = ledger_of(ledger)[0]
    for trial_id in before:
        assert starts_after.count(trial_id) == 1, f"{trial_id} was recorded before the stop and ran again"


def hold_the_run(proj: Path, hold: Path) -> Path:
    """Once two trials are recorded, trials starting from now wait at ``hold``: the run cannot finish before
    the test's pause lands, however slowly a busy machine starts the pause command."""
    wait_for(lambda: len(recorded(proj)) >= 2)
    hold.touch()
    return next((proj / ".lab" / "runs").iterdir())


def test_pause_holds_new_trials_back_and_resume_lets_the_runner_go_on(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    proj, ledger = held_project(tmp_path, sleep=0.3, hold=hold)
    runner = start_runner(proj, 2)
    run_dir = hold_the_run(proj, hold)
    code, out = cli("pause", "--run-dir", str(run_dir), "--reason", "inspect")
    hold.unlink()
    control = out["control"]
    assert code == 0 and control["state"] == "paused" and control["changed"] is True
    assert control["runner_active"] is True and control["runner_pid"] == runner.pid
    assert json.loads((run_dir / "control.json").read_text())["reason"] == "inspect"
    # The running trials finish (one handed out just before the pause included); then every slot of the
    # runner's pool waits at the gate, which the runner acknowledges: nothing runs and nothing starts.
    wait_for(lambda: held_slots(run_dir) == 2)
    starts, ends, _ = ledger_of(ledger)
    assert len(starts) == len(ends) < TRIALS, "a trial was running with every slot held"
    assert runner.poll() is None, "a paused runner waits"
    code, out = cli("pause", "--run-dir", str(run_dir))
    assert out["control"]["held_slots"] == 2 and ledger_of(ledger)[0] == starts
    assert code == 0 and out["control"]["changed"] is False
    code, out = cli("resume", "--run-dir", str(run_dir))
    assert code == 0 and out["control"]["state"] == "running" and out["control"]["runner_active"] is True
    assert out["run"] is None
    code, out = envelope(runner)
    assert code == 0 and out["run"]["status"] == "completed" and out["run"]["outcomes"] == {"success": TRIALS}


def test_a_paused_run_survives_its_runner_and_resume_runs_the_rest(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    proj, ledger = held_project(tmp_path, sleep=0.3, hold=hold)
    runner = start_runner(proj, 3)
    run_dir = hold_the_run(proj, hold)
    assert cli("pause", "--run-dir", str(run_dir))[0] == 0
    runner.send_signal(signal.SIGTERM)
    code, out = envelope(runner)
    assert code == 130 and out["error"]["details"]["status"] == "paused"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "paused"
    before = recorded(proj)

    hold.unlink()
    code, out = cli("resume", "--run-dir", str(run_dir), "--concurrency", "2")
    assert code == 0 and out["control"]["runner_active"] is False and out["control"]["status"] == "completed"
    assert out["run"]["status"] == "completed" and out["run"]["outcomes"] == {"success": TRIALS}
    assert json.loads((run_dir / "control.json").read_text())["state"] == "running"
    starts = ledger_of(ledger)[0]
    assert sorted(set(starts)) == sorted(f"trial_{i}" for i in range(1, TRIALS + 1))
    assert all(starts.count(t) == 1 for t in before)

    for command in ("pause", "resume"):
        code, out = cli(command, "--run-dir", str(run_dir))
        assert code == 5 and out["error"]["code"] == "conflict" and "completed" in out["error"]["message"]
    code, out = cli("pause", "--run-dir", str(tmp_path))
    assert code == 4 and out["error"]["code"] == "not_found"


def test_an_interrupted_run_that_nobody_holds_can_be_paused_then_resumed(tmp_path: Path) -> None:
    proj, ledger = held_project(tmp_path, sleep=0.2)
    runner = start_runner(proj, 2)
    wait_for(lambda: len(recorded(proj)) >= 1)
    runner.send_signal(signal.SIGINT)
    assert envelope(runner)[0] == 130
    run_dir = next((proj / ".lab" / "runs").iterdir())
    code, out = cli("pause", "--run-dir", str(run_dir))
    assert code == 0 and out["control"]["runner_active"] is False and out["control"]["status"] == "paused"
    # `run --resume` of a paused run is asked to run it: the control file says running again.
    code, out = cli("run", ".lab/experiment.yaml", "--resume", run_dir.name, cwd=proj)
    assert code == 0 and out["run"]["outcomes"] == {"success": TRIALS}
    assert json.loads((run_dir / "control.json").read_text())["state"] == "running"
    assert os.path.exists(run_dir / "attestation.json")
