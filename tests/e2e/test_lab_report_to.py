"""`opslab lab run --report-to URL`: every trial becomes an agent run in a real service, labelled with its
lab coordinates, and a failed trial gets a useful RCA. A service that is down costs the run nothing."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab.api import create_app
from opslab.config import Settings
from opslab.serving import ServerThread
from opslab.store import SqlRunRepository, make_engine
from tests.e2e.conftest import clean_env, run_cli
from tests.ports import free_port

# steady: always right. flaky: task t2 crashes after a tool call failed (a traceback on stderr), task t3
# gives a wrong answer (outcome failure with an error object); the rest succeed.
HARNESS = textwrap.dedent(
    """
    import argparse, json, os
    from datetime import datetime, timezone

    ap = argparse.ArgumentParser()
    ap.add_argument("--input")
    ap.add_argument("--output")
    args = ap.parse_args()
    inp = json.load(open(args.input))
    task, mode = inp["task"], inp["bindings"]["mode"]

    def event(**ev):
        ev.setdefault("ts", datetime.now(timezone.utc).isoformat())
        with open(os.environ["OPSLAB_EVENTS_PATH"], "a") as f:
            f.write(json.dumps(ev) + "\\n")

    event(type="plan", name="read task", status="ok")
    if mode == "flaky" and task["task_id"] == "t2":
        event(type="tool_call", tool="order_lookup", status="error", status_code=400,
              args={"order": task["task_id"]}, error="Missing required field: 'customer_id'",
              error_type="ValidationError")
        raise KeyError("customer_id")  # exits 1 with a traceback on stderr
    event(type="tool_call", tool="calculator", status="ok", args={"a": task["a"]}, result=str(task["a"] * 2))
    wrong = mode == "flaky" and task["task_id"] == "t3"
    out = {"outcome": "failure" if wrong else "success", "metrics": {"accuracy": 0.0 if wrong else 1.0}}
    if wrong:
        answer = 2 * task["a"]
        out["error"] = {"type": "WrongAnswer", "message": f"expected {answer}, got {answer + 1}"}
    json.dump(out, open(args.output, "w"))
    """
)
EXPERIMENT = """\
experiment: {id: report_demo, name: Report demo}
dataset: {path: ../data/tasks.jsonl}
design: {replications: 1, random_seed: 7, trial_timeout_s: 30}
runtime: {harness: {command: [python3, ./harness.py], integration_level: cli_events}, network: {mode: full}}
variants:
  baseline: {id: steady, bindings: {mode: steady}}
  treatments: [{id: flaky, bindings: {mode: flaky}}]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / ".lab").mkdir(parents=True)
    (proj / "data").mkdir()
    (proj / "harness.py").write_text(HARNESS)
    (proj / "data" / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_id": f"t{i}", "a": i}) + "\n" for i in range(1, 5))
    )
    (proj / ".lab" / "experiment.yaml").write_text(EXPERIMENT)
    return proj


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'opslab.db'}")
    with ServerThread(create_app(settings)) as server:
        yield server.url, settings


def lab_run(project: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    r = run_cli("lab", "run", ".lab/experiment.yaml", *args, env=clean_env(), cwd=project, timeout=300)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print one line of JSON: {r.stdout!r} {r.stderr[-800:]}"
    return r.returncode, json.loads(lines[0]), r.stderr


def wait_rca(api: httpx.Client, rca_id: str, seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/agent-runs/rca-runs/{rca_id}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"RCA {rca_id} not finished in {seconds} s")


def test_each_trial_becomes_a_labelled_agent_run_and_a_failed_one_gets_an_rca(
    project: Path, service: tuple[str, Settings]
) -> None:
    url, settings = service
    code, out, stderr = lab_run(project, "--report-to", url, "--json")
    assert code == 0, stderr[-800:]
    run = out["run"]
    assert run["total_trials"] == 8 and run["outcomes"] == {"success": 6, "error": 1, "failure": 1}
    assert (run["reported"], run["report_failures"], run["report_error"]) == (8, 0, None)

    lab_run_id = run["run_id"]
    with httpx.Client(base_url=url, timeout=30) as api:
        listed = api.get("/agent-runs", params={"agent_name": "report_demo", "limit": 100}).json()["items"]
        by_id = {r["run_id"]: r for r in listed}
        assert sorted(by_id) == sorted(f"{lab_run_id}.trial_{i}" for i in range(1, 9))
        # Plan order: steady t1..t4 are trials 1-4, flaky t1..t4 are trials 5-8.
        crashed, wrong = by_id[f"{lab_run_id}.trial_6"], by_id[f"{lab_run_id}.trial_7"]
        assert {r["agent_version"] for r in listed} == {"steady", "flaky"}
        assert (crashed["status"], crashed["error_type"]) == ("failure", "HarnessCrash")
        assert crashed["error_message"] == "harness exited with code 1: KeyError: 'customer_id'"
        assert (wrong["status"], wrong["error_type"], wrong["error_message"]) == (
            "failure",
            "WrongAnswer",
            "expected 6, got 7",
        )
        assert sum(r["status"] == "success" for r in listed) == 6
        assert crashed["counts"]["steps"] == 3 and crashed["counts"]["failed_tool_calls"] == 1

        stored = SqlRunRepository(make_engine(settings.resolved_database_url)).load_run(crashed["run_id"])
        assert stored is not None
        assert {k: stored.attributes[k] for k in ("lab.experiment", "lab.run_id", "lab.variant")} == {
            "lab.experiment": "report_demo",
            "lab.run_id": lab_run_id,
            "lab.variant": "flaky",
        }
        assert (stored.attributes["lab.trial_id"], stored.attributes["lab.task_id"]) == ("trial_6", "t2")
        assert stored.attributes["lab.replication"] == 1

        created = api.post(f"/agent-runs/{crashed['run_id']}/rca-runs")
        assert created.status_code == 202, created.text
        body = wait_rca(api, created.json()["rca_run_id"])
    assert body["status"] == "done", body
    report = body["report"]
    assert report["insufficient_evidence"] is False and report["category"] == "tool_schema_mismatch"
    snippets = " ".join(e["snippet"] for e in report["evidence_index"])
    assert "customer_id" in snippets and "KeyError" in snippets
    assert report["root_cause"] is not None and report["hypotheses"]


def test_a_service_that_is_down_costs_the_run_nothing(project: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    code, out, _ = lab_run(project, "--report-to", dead, "--json")
    assert code == 0 and out["ok"] is True
    run = out["run"]
    assert run["outcomes"] == {"success": 6, "error": 1, "failure": 1}
    assert (run["reported"], run["report_failures"]) == (0, 8) and "cannot reach" in run["report_error"]
    assert len(list((project / ".lab" / "runs" / run["run_id"] / "analysis" / "tables").glob("*.jsonl"))) == 5

    r = run_cli("lab", "run", ".lab/experiment.yaml", "--report-to", dead, env=clean_env(), cwd=project)
    assert r.returncode == 0 and "warning" in r.stderr and "8 trial(s) not reported" in r.stderr


def test_opslab_url_is_the_default_and_without_it_nothing_is_reported(
    project: Path, service: tuple[str, Settings]
) -> None:
    url, _ = service
    r = run_cli("lab", "run", ".lab/experiment.yaml", "--json", env=clean_env(OPSLAB_URL=url), cwd=project)
    assert r.returncode == 0 and json.loads(r.stdout)["run"]["reported"] == 8
    code, out, _ = lab_run(project, "--json")
    assert code == 0 and (out["run"]["reported"], out["run"]["report_failures"]) == (0, 0)
