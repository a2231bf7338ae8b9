"""Lab runs as jobs of the service: POST /lab/runs, GET /lab/runs/{id}, the SSE stream, the refusals, and
`opslab lab run --url` following a run it submitted."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from opslab.api import create_app
from opslab.client import OpslabClient
from opslab.config import Settings
from opslab.errors import PolicyViolation
from opslab.serving import ServerThread
from tests.conftest import FIXTURES
from tests.processes import running, started

OPSLAB = str(Path(sys.executable).parent / "opslab")


def project(root: Path, name: str = "proj") -> Path:
    dest = root / name
    shutil.copytree(FIXTURES / "lab" / "proj", dest)
    path = dest / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(path.read_text())
    exp["variants"]["treatments"] = [{"id": "odd", "bindings": {"mode": "odd_fails"}}]
    exp["design"]["replications"] = 2
    path.write_text(yaml.safe_dump(exp))
    return dest


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    root = tmp_path / "allowed"
    root.mkdir()
    return root


@pytest.fixture
def api(tmp_path: Path, allowed: Path, db_url: str) -> Iterator[httpx.Client]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        lab_allowed_roots=[allowed],
    )
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def wait_done(api: httpx.Client, lab_run_id: str, seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/lab/runs/{lab_run_id}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"lab run {lab_run_id} did not finish")


def test_a_lab_run_is_a_job_with_trials_done_and_pass_rates_on_its_stream(
    api: httpx.Client, allowed: Path
) -> None:
    proj = project(allowed)
    r = api.post("/lab/runs", json={"experiment_path": str(proj / ".lab" / "experiment.yaml")})
    assert r.status_code == 202, r.text
    lab_run_id = r.json()["lab_run_id"]
    with api.stream("GET", f"/lab/runs/{lab_run_id}/stream", timeout=120) as s:
        events = [json.loads(line[5:]) for line in s.iter_lines() if line.startswith("data:")]
    assert events[-1]["status"] == "done"
    running = [e["message"] for e in events if e["step"] == "Running trials"]
    assert running and running[-1].startswith("12/12 trials done; pass rate normal 100% (6/6), odd ")
    body = wait_done(api, lab_run_id)
    result = body["result"]
    assert result["total_trials"] == 12 and result["outcomes"] == {"success": 10, "failure": 2}
    assert set(result["variants"]) == {"normal", "odd"}
    run_dir = Path(result["run_dir"])
    assert run_dir.parent == proj / ".lab" / "runs" and (run_dir / "analysis" / "tables").is_dir()
    # The dashboard lists the job and finds its run in the project it ran in, unconfigured.
    page = api.get("/ui/experiments").text
    link = re.search(rf'href="(/ui/experiments/[0-9a-f]+/{re.escape(run_dir.name)})"', page)
    assert lab_run_id in page and link, page[-3000:]
    assert "Variant comparison" in api.get(link.group(1)).text


def test_an_inline_experiment_runs_in_its_project(api: httpx.Client, allowed: Path) -> None:
    proj = project(allowed)
    exp = yaml.safe_load((proj / ".lab" / "experiment.yaml").read_text())
    exp["variants"]["treatments"] = []
    r = api.post("/lab/runs", json={"experiment": exp, "project_path": str(proj)})
    assert r.status_code == 202, r.text
    body = wait_done(api, r.json()["lab_run_id"])
    assert body["status"] == "done" and body["result"]["total_trials"] == 6
    written = list((proj / ".lab").glob("api-*.yaml"))
    assert len(written) == 1 and yaml.safe_load(written[0].read_text()) == exp


def test_bad_requests_name_the_field_and_write_nothing(
    api: httpx.Client, allowed: Path, tmp_path: Path
) -> None:
    proj = project(allowed)
    outside = project(tmp_path, "outside")
    exp = yaml.safe_load((proj / ".lab" / "experiment.yaml").read_text())

    def refused(body: dict[str, Any], status: int, field: str) -> None:
        r = api.post("/lab/runs", json=body)
        assert r.status_code == status, r.text
        assert field in json.dumps(r.json()["error"]), r.text

    refused({"experiment_path": str(outside / ".lab" / "experiment.yaml")}, 403, "experiment_path")
    refused(
        {"experiment_path": str(allowed / ".." / "outside" / ".lab" / "experiment.yaml")},
        403,
        "experiment_path",
    )
    refused({"experiment_path": "proj/.lab/experiment.yaml"}, 422, "experiment_path")
    refused({"experiment_path": str(proj / ".lab" / "missing.yaml")}, 422, "experiment_path")
    refused({}, 422, "experiment_path")
    refused(
        {"experiment_path": str(proj / ".lab" / "experiment.yaml"), "experiment": exp}, 422, "experiment_path"
    )
    refused({"experiment": exp}, 422, "project_path")
    refused({"experiment": exp, "project_path": str(outside)}, 403, "project_path")
    refused({"experiment": {**exp, "design": {"replications": 0}}, "project_path": str(proj)}, 422, "design")
    escaping = {**exp, "dataset": {**exp["dataset"], "path": str(outside / "data" / "tasks.jsonl")}}
    refused({"experiment": escaping, "project_path": str(proj)}, 403, "dataset.path")
    refused({"experiment_path": str(proj / ".lab" / "experiment.yaml"), "executor": "rq"}, 422, "executor")
    refused({"experiment_path": str(proj / ".lab" / "experiment.yaml"), "concurrency": 0}, 422, "concurrency")
    assert not (proj / ".lab" / "runs").exists() and not list((proj / ".lab").glob("api-*.yaml"))
    assert not (outside / ".lab" / "runs").exists()


def test_paths_the_file_system_cannot_look_up_are_a_422_naming_the_field(
    api: httpx.Client, allowed: Path
) -> None:
    proj = project(allowed)
    exp = yaml.safe_load((proj / ".lab" / "experiment.yaml").read_text())
    (allowed / "loop_a").symlink_to(allowed / "loop_b")
    (allowed / "loop_b").symlink_to(allowed / "loop_a")
    long_name = "n" * 300
    deep = "/".join(["d" * 200] * 25)  # every name fits, the path does not
    bad = {
        "a NUL byte": f"{proj}/.lab/exp\x00.yaml",
        "a symbolic link loop": f"{allowed}/loop_a/.lab/experiment.yaml",
        "a name too long": f"{allowed}/{long_name}/experiment.yaml",
        "a path too long": f"{allowed}/{deep}/experiment.yaml",
    }
    for why, path in bad.items():
        for body, field in (
            ({"experiment_path": path}, "experiment_path"),
            ({"experiment": exp, "project_path": path.removesuffix("/experiment.yaml")}, "project_path"),
            (
                {
                    "experiment": {**exp, "dataset": {**exp["dataset"], "path": path}},
                    "project_path": str(proj),
                },
                "dataset.path",
            ),
        ):
            r = api.post("/lab/runs", json=body)
            assert r.status_code == 422, (why, field, r.status_code, r.text[:300])
            fields = [e["field"] for e in r.json()["error"]["details"]["errors"]]
            assert field in fields, (why, r.text[:300])
    assert not (proj / ".lab" / "runs").exists() and not list((proj / ".lab").glob("api-*.yaml"))


def test_without_allowed_roots_the_api_runs_no_experiment(tmp_path: Path) -> None:
    proj = project(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'api.db'}")
    with (
        ServerThread(create_app(settings)) as server,
        OpslabClient(server.url) as client,
        pytest.raises(PolicyViolation, match="OPSLAB_LAB_ALLOWED_ROOTS"),
    ):
        client.create_lab_run(experiment_path=str(proj / ".lab" / "experiment.yaml"))
    assert not (proj / ".lab" / "runs").exists()


def test_lab_run_url_submits_to_the_service_and_follows_it(api: httpx.Client, allowed: Path) -> None:
    proj = project(allowed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}
    r = subprocess.run(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--url", str(api.base_url), "--json"],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["run"]["total_trials"] == 12
    assert api.get(f"/lab/runs/{out['lab_run_id']}").json()["status"] == "done"
    assert Path(out["run"]["run_dir"]).parent == proj / ".lab" / "runs"
    human = subprocess.run(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--url", str(api.base_url)],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert human.returncode == 0 and "trials done" in human.stderr and "normal" in human.stdout
    help_text = subprocess.run([OPSLAB, "lab", "run", "--help"], env=env, capture_output=True, text=True)
    assert "--executor" in help_text.stdout and "--url" in help_text.stdout


def test_a_running_lab_run_cancelled_through_the_api_stops_its_harnesses_and_resumes(
    api: httpx.Client, allowed: Path, tmp_path: Path
) -> None:
    proj = project(allowed)
    ledger, hold = tmp_path / "ledger.txt", tmp_path / "hold"
    hold.write_text("held")
    path = proj / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(path.read_text())
    exp["design"]["trial_timeout_s"] = 120  # a held trial waits for the test, however busy the machine
    exp["variants"]["treatments"] = [{"id": "held", "bindings": {"ledger": str(ledger), "hold": str(hold)}}]
    path.write_text(yaml.safe_dump(exp))
    created = api.post("/lab/runs", json={"experiment_path": str(path), "concurrency": 2}).json()
    lab_run_id = created["lab_run_id"]
    held = _held_harnesses(ledger, want=1)
    answer = api.post(f"/lab/runs/{lab_run_id}/cancel")
    assert answer.status_code == 200, answer.text
    body = _wait_status(api, lab_run_id, "cancelled", seconds=30)
    assert "trials finished and kept" in body["message"], body
    assert not any(running(h) for h in held), "the held harnesses must be killed"
    run_dir = next((proj / ".lab" / "runs").iterdir())
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    kept = [p.parent.name for p in run_dir.glob("trials/*/trial_output.json")]
    hold.unlink()
    from opslab.lab import run_experiment

    resumed = run_experiment(path, resume=run_dir.name, env_base=dict(os.environ))
    assert resumed.status == "completed" and resumed.total_trials == 12
    assert all((run_dir / "trials" / t / "trial_output.json").exists() for t in kept)


def _held_harnesses(ledger: Path, *, want: int, seconds: float = 60) -> list[tuple[int, int]]:
    """The ``identity`` of each held harness running, once ``want`` are."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ledger.exists():
            lines = [line.split() for line in ledger.read_text().splitlines() if line.startswith("start")]
            held = [h for h in map(started, lines) if running(h)]
            if len(held) >= want:
                return held
        time.sleep(0.05)
    raise AssertionError("no held harness started")


def _wait_status(api: httpx.Client, lab_run_id: str, status: str, *, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = api.get(f"/lab/runs/{lab_run_id}").json()
        if body["status"] == status:
            return body
        time.sleep(0.1)
    raise AssertionError(f"lab run {lab_run_id} is {body.get('status')!r} after {seconds} s: {body}")
