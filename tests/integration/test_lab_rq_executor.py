"""`opslab lab run --executor rq` for real: Redis, RQ, two `opslab worker` processes sharing the runs
folder, a local run beside it, and a worker killed with SIGKILL mid-trial."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslab.api import create_app
from opslab.client import OpslabClient
from opslab.config import Settings
from opslab.lab import LabClient
from opslab.serving import ServerThread
from tests.conftest import FIXTURES
from tests.processes import describe, running, started
from tests.workers import start_workers, stop_workers, worker_env

OPSLAB = str(Path(sys.executable).parent / "opslab")
# What differs between two runs of the same trials by nature: ids of the run, clocks.
VOLATILE = {"run_id", "duration_ms", "started_at", "ended_at", "mean_duration_ms", "p95_duration_ms"}

Cluster = Callable[..., tuple[dict[str, str], list[subprocess.Popen[bytes]]]]


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Starts `opslab worker` processes on a queue of their own; gives the environment that reaches them."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(workers: int = 2) -> tuple[dict[str, str], list[subprocess.Popen[bytes]]]:
        db_url = f"sqlite:///{tmp_path / 'workers.db'}"
        env = worker_env(tmp_path, redis_url=redis_url, db_url=db_url, lease_s=3, prefix="t-lab")
        mine = start_workers(env, tmp_path, workers)
        procs.extend(mine)
        return env, mine

    yield start
    stop_workers(procs)


def copy_project(tmp_path: Path, name: str, *, timeout_s: float | None = None, **bindings: Any) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / "lab" / "proj", dest)
    if timeout_s is None and not bindings:
        return dest
    path = dest / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(path.read_text())
    if timeout_s is not None:
        exp["design"]["trial_timeout_s"] = timeout_s
    if bindings:
        exp["design"]["replications"] = 2
        # A held trial waits for the test: the deadline must not depend on how busy the machine is.
        exp["design"]["trial_timeout_s"] = 120
        exp["variants"]["treatments"] = [{"id": "held", "bindings": {"mode": "normal", **bindings}}]
        exp["variants"]["baseline"]["bindings"]["ledger"] = bindings["ledger"]
    path.write_text(yaml.safe_dump(exp))
    return dest


def lab_run(proj: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    r = subprocess.run(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--json", *extra],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    run: dict[str, Any] = json.loads(r.stdout)["run"]
    return run


def tables(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for path in sorted((run_dir / "analysis" / "tables").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        found[path.stem] = [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]
    return found


def test_two_rq_workers_give_the_tables_of_a_local_run(cluster: Cluster, tmp_path: Path) -> None:
    env, _ = cluster(workers=2)
    # Only the hanging trials may reach the deadline: on a busy machine a trial that finishes can take
    # more than the fixture's 2 s to start and write, and the two runs would differ by that chance.
    local = lab_run(copy_project(tmp_path, "local", timeout_s=8), env, "--concurrency", "4")
    queued = lab_run(copy_project(tmp_path, "queued", timeout_s=8), env, "--executor", "rq")
    assert queued["total_trials"] == local["total_trials"] == 21
    assert queued["outcomes"] == local["outcomes"] and queued["tables"] == local["tables"]
    assert tables(Path(queued["run_dir"])) == tables(Path(local["run_dir"]))
    sdk = LabClient(cwd=copy_project(tmp_path, "sdk", timeout_s=8), env=env).run(executor="rq")
    assert tables(sdk.run.run_dir) == tables(Path(local["run_dir"]))
    logs = [(tmp_path / f"worker-{i}.log").read_text() for i in range(2)]
    assert all("opslab worker" in log for log in logs)


def _start_held_run(
    tmp_path: Path, env: dict[str, str], ledger: Path, hold: Path
) -> tuple[Path, subprocess.Popen[str]]:
    """`opslab lab run --executor rq` of a project whose harnesses wait while ``hold`` exists."""
    hold.write_text("held")
    proj = copy_project(tmp_path, "proj", ledger=str(ledger), hold=str(hold))
    runner = subprocess.Popen(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--json", "--executor", "rq"],
        cwd=proj,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proj, runner


def test_a_worker_killed_mid_trial_has_its_trial_retried_once_and_never_duplicated(
    cluster: Cluster, tmp_path: Path
) -> None:
    env, workers = cluster(workers=2)
    ledger, hold = tmp_path / "ledger.txt", tmp_path / "hold"
    proj, runner = _start_held_run(tmp_path, env, ledger, hold)
    try:
        held = _wait_for_held(ledger, proj, want=2)
        trial_id, harness = held[0]
        victim = next(w for w in workers if w.pid in _ancestors(harness[0]))
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        deadline = time.monotonic() + 60
        while running(harness) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(harness), f"the killed worker's harness must die with it: {describe([harness[0]])}"
        hold.unlink()
        out, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, out + err[-2000:]
    run = json.loads(out)["run"]
    assert run["total_trials"] == 12 and run["outcomes"] == {"success": 12}
    starts = [line.split()[1] for line in ledger.read_text().splitlines() if line.startswith("start ")]
    assert starts.count(trial_id) == 2, starts  # run again, once
    rows = [json.loads(line) for line in (Path(run["run_dir"]) / "analysis/tables/trials.jsonl").open()]
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 12
    assert next(r for r in rows if r["trial_id"] == trial_id)["attempt"] == 2
    assert all(r["attempt"] == 1 for r in rows if r["trial_id"] != trial_id)


def test_an_interrupted_rq_run_stops_its_trials_on_the_workers_and_resumes(
    cluster: Cluster, tmp_path: Path
) -> None:
    env, _ = cluster(workers=2)
    ledger, hold = tmp_path / "ledger.txt", tmp_path / "hold"
    proj, runner = _start_held_run(tmp_path, env, ledger, hold)
    try:
        held = _wait_for_held(ledger, proj, want=2)
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, out + err[-2000:]
    body = json.loads(out)
    assert body["error"]["code"] == "interrupted"
    run_dir = next((proj / ".lab" / "runs").iterdir())
    assert not any(running(h) for _, h in held), "the held harnesses must be killed"
    assert all(not (run_dir / "trials" / trial_id).exists() for trial_id, _ in held)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    hold.unlink()
    run = lab_run(proj, env, "--executor", "rq", "--resume", run_dir.name)
    assert run["total_trials"] == 12 and run["outcomes"] == {"success": 12}
    rows = [json.loads(line) for line in (run_dir / "analysis/tables/trials.jsonl").open()]
    assert len({r["trial_id"] for r in rows}) == len(rows) == 12


def _wait_for_held(ledger: Path, proj: Path, *, want: int) -> list[tuple[str, tuple[int, int]]]:
    """The held trials running now (trial id, the harness's ``identity``), once ``want`` are."""
    deadline = time.monotonic() + 60
    held: list[tuple[str, tuple[int, int]]] = []
    while time.monotonic() < deadline:
        if ledger.exists():
            held = [
                (parts[1], harness)
                for parts in (line.split() for line in ledger.read_text().splitlines())
                if parts[0] == "start" and _is_held(proj, parts[1]) and running(harness := started(parts))
            ]
            if len(held) >= want:
                return held
        time.sleep(0.05)
    raise AssertionError(f"no held trials running: {held}")


def _is_held(proj: Path, trial_id: str) -> bool:
    for path in proj.glob(f".lab/runs/*/trials/{trial_id}/trial_input.json"):
        return bool(json.loads(path.read_text())["variant_id"] == "held")
    return False


def _ancestors(pid: int) -> set[int]:
    found: set[int] = set()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        found.add(pid)
    return found


def test_a_lab_run_job_on_a_worker_fans_its_trials_out_to_the_others(
    cluster: Cluster, tmp_path: Path, redis_url: str
) -> None:
    env, _ = cluster(workers=2)  # one runs the job, the other its trials
    proj = copy_project(tmp_path, "proj")
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=env["OPSLAB_DATABASE_URL"],
        redis_url=redis_url,
        job_queue=env["OPSLAB_JOB_QUEUE"],
        job_lease_s=3,
        lab_allowed_roots=[tmp_path],
    )
    with ServerThread(create_app(settings)) as server, OpslabClient(server.url) as client:
        created = client.create_lab_run(experiment_path=str(proj / ".lab" / "experiment.yaml"), executor="rq")
        events = list(client.stream_lab_run(created.lab_run_id))
        view = client.get_lab_run(created.lab_run_id)
    assert events[-1].status == "done" and view.result is not None, view.error
    assert view.result.total_trials == 21 and view.result.run_dir.parent == proj / ".lab" / "runs"
    assert any("21/21 trials done" in e.message for e in events)


def test_a_cancel_through_the_api_stops_an_rq_run_and_its_trials_on_the_workers(
    cluster: Cluster, tmp_path: Path, redis_url: str
) -> None:
    env, _ = cluster(workers=2)
    ledger, hold = tmp_path / "ledger.txt", tmp_path / "hold"
    hold.write_text("held")
    proj = copy_project(tmp_path, "proj", ledger=str(ledger), hold=str(hold))
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=env["OPSLAB_DATABASE_URL"],
        redis_url=redis_url,
        job_queue=env["OPSLAB_JOB_QUEUE"],
        job_lease_s=3,
        lab_allowed_roots=[tmp_path],
    )
    with ServerThread(create_app(settings)) as server, OpslabClient(server.url) as client:
        created = client.create_lab_run(experiment_path=str(proj / ".lab" / "experiment.yaml"), executor="rq")
        held = _wait_for_held(ledger, proj, want=1)
        client.cancel_lab_run(created.lab_run_id)
        deadline = time.monotonic() + 30
        view = client.get_lab_run(created.lab_run_id)
        while view.status != "cancelled" and time.monotonic() < deadline:
            time.sleep(0.2)
            view = client.get_lab_run(created.lab_run_id)
    assert view.status == "cancelled", view
    deadline = time.monotonic() + 60  # the workers' own cancel takes their trials down
    while any(running(h) for _, h in held) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(h) for _, h in held), "the held harnesses on the workers must be killed"
    run_dir = next((proj / ".lab" / "runs").iterdir())
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"


def test_executor_rq_without_redis_is_refused_naming_the_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}
    r = subprocess.run(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--json", "--executor", "rq"],
        cwd=copy_project(tmp_path, "proj"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    body = json.loads(r.stdout)
    assert r.returncode != 0 and body["error"]["code"] == "invalid_input"
    assert "OPSLAB_REDIS_URL" in body["error"]["message"]
    assert not list((tmp_path / "proj" / ".lab").glob("runs/*"))
