"""Isolated trials through a worker's zygote (``lab.isolation.zygote``): one sandbox per worker, each
trial in fresh namespaces of its own. What one trial leaves, the next trial of the same worker never
sees; no trial sees another's folder; the zygote (PID 1 of the worker's sandbox) can be neither read nor
stopped by a trial; the trial runs with no capability, no_new_privs and the seccomp filter."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from opslab.lab import load_outputs, run_experiment
from opslab.lab.isolation import plan as isolation_plan
from opslab.lab.records import TrialRecord
from tests.conftest import FIXTURES, REQUIRE

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None and not REQUIRE, reason="bubblewrap is not installed"
)


def project(tmp_path: Path, steps: list[str]) -> Path:
    proj = tmp_path / "proj"
    (proj / ".lab").mkdir(parents=True)
    (proj / "data").mkdir()
    shutil.copy(FIXTURES / "lab" / "isolation" / "zygote_probe.py", proj / "probe.py")
    tasks = [{"task_id": f"{i}-{step}", "step": step} for i, step in enumerate(steps)]
    (proj / "data" / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    experiment = {
        "experiment": {"id": "zygote", "name": "zygote"},
        "dataset": {"path": "../data/tasks.jsonl"},
        "design": {"replications": 1, "random_seed": 1, "trial_timeout_s": 120},
        "runtime": {
            "harness": {"command": ["python3", "./probe.py"], "integration_level": "cli_basic"},
            "network": {"mode": "none"},
        },
        "variants": {"baseline": {"id": "control", "bindings": {}}},
    }
    (proj / ".lab" / "experiment.yaml").write_text(json.dumps(experiment))
    return proj


def run(proj: Path, concurrency: int) -> list[TrialRecord]:
    lab_run = run_experiment(
        proj / ".lab" / "experiment.yaml", env_base=dict(os.environ), concurrency=concurrency
    )
    ids = sorted(p.name for p in (lab_run.run_dir / "trials").iterdir() if p.is_dir())
    records = load_outputs(lab_run.run_dir, ids)
    assert all(r.outcome == "success" for r in records), [r.error_text for r in records]
    return sorted(records, key=lambda r: r.started_at)


def result(record: TrialRecord) -> dict[str, Any]:
    assert isinstance(record.result, dict)
    return record.result


def test_what_a_trial_leaves_the_next_trial_of_its_worker_never_sees(tmp_path: Path) -> None:
    leave, look = (result(r) for r in run(project(tmp_path, ["leave", "look"]), concurrency=1))
    zygote = leave["processes"]["1"]
    assert "opslab-zygote" in zygote, leave["processes"]  # the trials ran in the worker's zygote
    assert look["processes"]["1"] == zygote  # the same one, for both
    # Its daemon (a session of its own) ended with it; its files in /tmp and /dev/shm went with its mounts.
    assert not any("sleep" in cmd for cmd in look["processes"].values()), look["processes"]
    assert look["left"] == []
    assert leave["tmp"] == leave["shm"] == "done"  # its own, writable
    assert leave["root"] == leave["dev"] == "OSError"  # read-only: nothing there outlives the trial
    # The zygote can be neither read nor stopped.
    assert leave["environ_of_1"] == leave["mem_of_1"] == "PermissionError"
    assert look["processes"]["1"] == zygote  # kill(1, SIGKILL) from inside was not delivered
    for seen in (leave, look):
        status = seen["status"]
        assert {status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == {"0000000000000000"}
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
        assert len(seen["trial_folders"]) == 1  # the run's other trial folders are covered


def test_trials_of_parallel_workers_see_only_their_own_folder(tmp_path: Path) -> None:
    records = run(project(tmp_path, ["look"] * 4), concurrency=2)
    for record in records:
        assert result(record)["trial_folders"] == [record.trial_id]


def test_without_the_zygote_each_trial_has_a_sandbox_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation_plan, "_zygote_enabled", lambda: False)
    leave, look = (result(r) for r in run(project(tmp_path, ["leave", "look"]), concurrency=1))
    assert "opslab-zygote" not in leave["processes"]["1"]
    assert look["left"] == [] and len(look["trial_folders"]) == 1
