"""The runner never becomes the trial's tool: a hostile harness, run by root under the real isolation,
attacks the runner through what it leaves in its folders (docs/security.md, "The runner's own file
handling", names these tests row by row). Links, FIFOs, endless and huge files, a rewritten input,
checkpoints naming host paths, a setsid child, and each of runtime.limits."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from opslab.errors import PolicyViolation
from opslab.lab import fork_trial, load_outputs, replay_trial, run_experiment
from opslab.lab.publish import publish_run
from opslab.lab.records import TrialRecord
from tests.conftest import FIXTURES, REQUIRE

HARNESS = FIXTURES / "lab" / "isolation" / "runner_attacks.py"
ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(
    (shutil.which("bwrap") is None or shutil.which("busybox") is None) and not REQUIRE,
    reason="bubblewrap and busybox-static are not installed",
)
HOST_SECRET = "HOST-ONLY-7Q2"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """Files of the host a trial must never get into the run through the runner."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "victim.json").write_text(
        json.dumps({"outcome": "success", "metrics": {}, "result": {"stolen": HOST_SECRET}})
    )
    (folder / "events.jsonl").write_text(json.dumps({"type": "stolen", "name": HOST_SECRET}) + "\n")
    (folder / "secret.txt").write_text(HOST_SECRET)
    return folder


def project(tmp_path: Path, tasks: list[dict[str, Any]], *, network: str = "none", **runtime: Any) -> Path:
    proj = tmp_path / "proj"
    (proj / ".lab").mkdir(parents=True, exist_ok=True)
    (proj / "data").mkdir(exist_ok=True)
    shutil.copy(HARNESS, proj / "attacks.py")
    (proj / "data" / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    experiment = {
        "experiment": {"id": "trust", "name": "trust"},
        "dataset": {"path": "../data/tasks.jsonl"},
        "design": {"replications": 1, "random_seed": 1, "trial_timeout_s": runtime.pop("timeout", 120)},
        "runtime": {
            "harness": {"command": ["python3", "./attacks.py"], "integration_level": "cli_events"},
            "network": {"mode": network},
            **runtime,
        },
        "variants": {"baseline": {"id": "control", "bindings": {"model": "original"}}},
    }
    (proj / ".lab" / "experiment.yaml").write_text(json.dumps(experiment))
    return proj


def run(proj: Path) -> tuple[Path, dict[str, TrialRecord]]:
    lab_run = run_experiment(proj / ".lab" / "experiment.yaml", env_base=dict(os.environ))
    ids = sorted(p.name for p in (lab_run.run_dir / "trials").iterdir() if p.is_dir())
    records = load_outputs(lab_run.run_dir, ids)
    tasks = {r.trial_id: r.task_id for r in records}
    return lab_run.run_dir, {tasks[r.trial_id]: r for r in records}


def task(task_id: str, host: Path, *attacks: str, **extra: Any) -> dict[str, Any]:
    return {"task_id": task_id, "host": str(host), "attacks": list(attacks), **extra}


def files_holding(folder: Path, text: str) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and text.encode() in path.read_bytes():
            found.append(str(path.relative_to(folder)))
    return found


def test_no_link_a_trial_leaves_is_followed_into_the_run_or_its_bundle(tmp_path: Path, host: Path) -> None:
    proj = project(
        tmp_path,
        [
            task("output", host, "link_output"),
            task("events", host, "link_events"),
            task("stderr", host, "link_stderr"),
        ],
    )
    run_dir, by_task = run(proj)
    assert by_task["output"].outcome == "error"
    assert "trial_output.json is a symbolic link, not followed" in (by_task["output"].error_text() or "")
    events = by_task["events"]
    assert events.outcome == "success" and events.event_counts == {}
    assert events.notes and "harness_events.jsonl is a symbolic link" in events.notes[0]
    bundle = publish_run(run_dir, output=tmp_path / "bundle.tar.gz", env={})
    with tarfile.open(bundle.path) as tar:
        tar.extractall(tmp_path / "bundle", filter="data")
    assert files_holding(run_dir, HOST_SECRET) == []
    assert files_holding(tmp_path / "bundle", HOST_SECRET) == []


def test_a_fifo_an_endless_file_and_huge_output_are_refused_or_cut(tmp_path: Path, host: Path) -> None:
    proj = project(
        tmp_path,
        [
            task("fifo", host, "output_fifo"),
            task("devzero", host, "devzero_events"),
            task("huge", host, "huge_events"),
            task("loud", host, "loud"),
        ],
        limits={"events_mb": 1, "log_keep_mb": 1},
    )
    run_dir, by_task = run(proj)
    assert by_task["fifo"].outcome == "error" and "a FIFO, not read" in (by_task["fifo"].error_text() or "")
    assert by_task["devzero"].notes and "symbolic link" in by_task["devzero"].notes[0]
    huge = by_task["huge"]
    assert huge.notes and "only the first 1048576 read" in huge.notes[0]
    assert 0 < huge.event_counts["step"] < 3 * 1024 * 1024 // 100  # the lines within the cap, whole
    loud = by_task["loud"]
    log = (run_dir / "trials" / loud.trial_id / "out" / "stdout.log").read_bytes()
    assert len(log) < 2 * 2**20 + 200 and log.endswith(b"LAST-WORDS") and b"bytes cut here" in log
    assert loud.notes and loud.notes[0].startswith("stdout.log: 5242890 bytes written")


def test_the_run_keeps_its_own_record_of_the_input_a_harness_rewrote(tmp_path: Path, host: Path) -> None:
    proj = project(tmp_path, [task("rewrite", host, "rewrite_input")])
    run_dir, by_task = run(proj)
    trial_id = by_task["rewrite"].trial_id
    tdir = run_dir / "trials" / trial_id
    assert json.loads((tdir / "out" / "trial_input.json").read_text())["bindings"] == {"model": "TAMPERED"}
    assert json.loads((tdir / "trial_input.json").read_text())["bindings"] == {"model": "original"}
    assert (tdir / "trial_input.json").stat().st_nlink == 1
    replay = replay_trial(run_dir, trial_id, env_base=dict(os.environ))
    replayed = json.loads((replay.trial_dir / "trial_input.json").read_text())
    assert replayed["bindings"] == {"model": "original"}


def test_a_fork_copies_a_checkpoint_only_from_the_trials_own_folders(tmp_path: Path, host: Path) -> None:
    proj = project(tmp_path, [task("ckpt", host, "checkpoints")])
    run_dir, by_task = run(proj)
    trial_id = by_task["ckpt"].trial_id
    for label in ("absolute", "climbing", "linked"):
        with pytest.raises(PolicyViolation, match="refused"):
            fork_trial(run_dir, trial_id, at=label, sets={}, env_base=dict(os.environ))
    fork, _ = fork_trial(run_dir, trial_id, at="good", sets={}, env_base=dict(os.environ))
    assert json.loads((fork.trial_dir / "out" / "checkpoint" / "good.json").read_text()) == {"step": 1}
    assert files_holding(run_dir, HOST_SECRET) == []


@pytest.mark.parametrize("limits", [{}, {"pids": 256}], ids=["subreaper", "cgroup"])
def test_a_setsid_child_of_a_host_trial_ends_with_it(
    tmp_path: Path, host: Path, limits: dict[str, Any]
) -> None:
    if limits and not ROOT:
        pytest.skip("a host trial's cgroup needs a root runner")
    marker = host / "survivor"
    attack = task("escape", host, "setsid_child", child_sleep=3, marker=str(marker), linger=30)
    proj = project(tmp_path, [attack], network="full", timeout=1, limits=limits)
    _, by_task = run(proj)
    assert "timeout" in (by_task["escape"].error_text() or "")
    deadline = time.monotonic() + 6  # the child would write its marker 3 s after it started
    while time.monotonic() < deadline:
        assert not marker.exists(), "the setsid child outlived its trial"
        time.sleep(0.2)


@pytest.mark.skipif(not ROOT, reason="the memory group of a trial needs a root runner")
def test_a_trial_over_its_memory_limit_is_killed_and_recorded(tmp_path: Path, host: Path) -> None:
    proj = project(tmp_path, [task("memory", host, "memory", memory_mb=256)], limits={"memory_mb": 64})
    _, by_task = run(proj)
    record = by_task["memory"]
    # SIGKILL from the kernel's out-of-memory killer, as the sandbox reports a killed child (128 + 9)
    assert record.outcome == "error" and "code 137" in (record.error_text() or ""), record.error_text()


def test_cpu_and_tmp_limits_hold(tmp_path: Path, host: Path) -> None:
    proj = project(
        tmp_path,
        [task("cpu", host, "cpu"), task("tmp", host, "tmp", tmp_mb=4)],
        limits={"cpu_s": 1, "tmp_mb": 1},
        timeout=50,
    )
    _, by_task = run(proj)
    cpu = by_task["cpu"]
    assert cpu.outcome == "error" and "timeout" not in (cpu.error_text() or ""), cpu.error_text()
    assert cpu.duration_ms < 40_000
    assert by_task["tmp"].result == {"attacks": ["tmp"], "tmp": "No space left on device"}


def test_a_file_or_a_workspace_over_the_limit_is_stopped_or_recorded(tmp_path: Path, host: Path) -> None:
    proj = project(
        tmp_path,
        [task("file", host, "big_file", file_mb=3), task("workspace", host, "many_files")],
        limits={"workspace_mb": 1},
    )
    _, by_task = run(proj)
    assert by_task["file"].result == {"attacks": ["big_file"], "big_file": "File too large"}
    workspace = by_task["workspace"]
    assert workspace.outcome == "error"
    assert "over runtime.limits.workspace_mb" in (workspace.error_text() or "")
