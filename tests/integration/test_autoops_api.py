"""AutoOps in the service, on SQLite and PostgreSQL: the seed's routes, builds reported by a CI, bad input
refused with nothing stored, the optimizer's learning surviving a restart, the continuous loop, and the
series on /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opslab.api import create_app
from opslab.autoops import dqn_available
from opslab.config import Settings

BUILD = {
    "config": {"cache": True, "memory_gb": 4, "parallelism": 4, "retries": 0, "pinned_image": False},
    "context": {"repo_size_mb": 3000, "dependency_churn": 0.05, "flaky_share": 0.01},
    "status": "failed",
    "duration": 312.5,
    "error": "Killed signal terminated program cc1plus (exit code 137)",
    "error_class": "oom",
}


def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with client(settings) as c:
        yield c


def test_the_seed_routes_answer_in_the_seed_shape(api: TestClient) -> None:
    build = api.post("/simulate_build")
    assert build.status_code == 200 and {"status", "duration", "error"} <= set(build.json())
    fixed = api.post("/simulate_build", json={"action_id": 3}).json()
    assert fixed["action_id"] == 3 and fixed["config"]["memory_gb"] == 8
    best = api.get("/get_best_action", params={"repo_size_mb": 5000, "last_error_class": "oom"}).json()
    assert {"action_id", "action_description", "confidence"} <= set(best) and 0 <= best["confidence"] <= 1
    fix = api.post("/suggest_fix", json={"error": "Out of memory during build"}).json()
    assert fix["document_id"] == "build-oom" and fix["source"] == "knowledge"
    assert "memory" in fix["suggestion"].lower() and fix["config_change"] == {"memory_gb": 4, "cache": True}
    unknown = api.post("/suggest_fix", json={"error": "the moon is made of cheese"}).json()
    assert unknown["document_id"] is None and unknown["suggestion"].startswith("no known fix")
    metrics = api.get("/metrics").text
    assert "autoops_builds_total" in metrics and "autoops_build_duration_seconds_bucket" in metrics


def test_suggest_fix_takes_the_monitors_own_output(api: TestClient) -> None:
    seed_monitor = {"status": "failed", "duration": 2.34, "error": "Out of memory during build"}
    fix = api.post("/suggest_fix", json=seed_monitor)
    assert fix.status_code == 200, fix.text
    assert fix.json()["document_id"] == "build-oom" and fix.json()["actions"][0]["from_runbook"]
    build = api.post("/simulate_build", json={"action_id": 0}).json()  # this monitor's answer, as is
    answer = api.post("/suggest_fix", json=build)
    assert answer.status_code == 200, answer.text
    if build["status"] == "failed":
        assert answer.json()["document_id"] == f"build-{build['error_class']}".replace("_", "-")
    ok = api.post("/suggest_fix", json={"status": "success", "duration": 31.5, "error": None}).json()
    assert ok["document_id"] is None and ok["suggestion"].startswith("nothing to fix")
    for body, field in (
        ({"status": "failed", "duration": 2.34}, "error"),
        ({"status": "failed", "duration": -1, "error": "OOMKilled"}, "duration"),
        ({"error": "OOMKilled", "durations": 2}, "durations"),
    ):
        refused = api.post("/suggest_fix", json=body)
        assert refused.status_code == 422 and field in refused.text, (body, refused.text)


def test_bad_input_is_refused_by_name_and_nothing_is_stored(api: TestClient) -> None:
    before = api.get("/autoops/status").json()["builds"]
    cases = [
        ("/simulate_build", b"{not json", "body"),
        ("/simulate_build", b'{"action_id": 99}', "action_id"),
        ("/simulate_build", b'{"action_id": 1, "config": {}}', "config"),
        ("/builds", b'{"status": "failed"}', "config"),
        ("/builds", b'{"config": {}, "context": {}, "status": "failed", "duration": 3}', "error"),
        (
            "/builds",
            b'{"config": {"memory_gb": 3}, "context": {}, "status": "success", "duration": 3}',
            "memory_gb",
        ),
        ("/suggest_fix", b'{"error": ""}', "error"),
    ]
    for path, body, field in cases:
        r = api.post(path, content=body, headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (path, body, r.status_code)
        assert field in r.text, (path, body, r.text)
    assert api.get("/get_best_action", params={"last_error_class": "gremlins"}).status_code == 422
    assert api.get("/autoops/status").json()["builds"] == before


def test_a_ci_build_is_kept_and_learning_survives_a_restart(settings: Settings) -> None:
    with client(settings) as api:
        for _ in range(30):
            assert api.post("/builds", json=BUILD).status_code == 201
        ok = {**BUILD, "config": {**BUILD["config"], "memory_gb": 8}, "status": "success", "error": None}
        for _ in range(30):
            assert api.post("/builds", json=ok).json()["action_id"] == 3  # the catalog's 8GB + cache
        query = {"repo_size_mb": 3000, "dependency_churn": 0.05, "flaky_share": 0.01}
        learned = api.get("/get_best_action", params=query).json()
        counts = api.get("/autoops/status").json()["builds"]
    assert counts == {"failed": 30, "success": 30}
    with client(settings) as api:  # a new process on the same database
        again = api.get("/get_best_action", params=query).json()
    assert learned["action_id"] == again["action_id"] == 3
    assert again["confidence"] == pytest.approx(learned["confidence"], abs=0.2)


def test_the_continuous_loop_runs_its_budget_and_stops(api: TestClient) -> None:
    assert api.post("/autoops/loop", json={"builds": 5, "interval_s": 0}).status_code == 202
    deadline = time.monotonic() + 30
    while api.get("/autoops/status").json()["loop"]["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    status = api.get("/autoops/status").json()
    assert status["loop"]["state"] == "finished" and status["loop"]["done"] == 5
    assert sum(status["builds"].values()) == 5
    assert api.post("/autoops/loop", json={"builds": 0}).status_code == 422
    api.post("/autoops/loop", json={"builds": 100000, "interval_s": 0.05})
    assert api.post("/autoops/loop", json={"builds": 1}).status_code == 409  # one loop at a time
    stopped = api.post("/autoops/loop/stop").json()
    assert stopped["state"] in ("idle", "finished") and stopped["done"] < 100000


def test_the_cli_demo_prints_the_seed_lines_and_imports_a_ci_history(tmp_path: Path) -> None:
    from tests.e2e.conftest import clean_env, run_cli

    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
    r = run_cli("autoops", "run", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["[Monitor]", "[Optimizer]", "[Responder]"]
    history = tmp_path / "builds.jsonl"
    import json

    history.write_text("\n".join(json.dumps(BUILD) for _ in range(3)) + "\n")
    r = run_cli("autoops", "import", str(history), "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["imported"] == 3, r.stderr
    history.write_text(json.dumps(BUILD) + "\n" + json.dumps({**BUILD, "duration": -1}) + "\n")
    r = run_cli("autoops", "import", str(history), env=env)
    assert r.returncode == 2 and ":2:" in r.stderr and "duration" in r.stderr
    status = json.loads(run_cli("autoops", "status", "--json", env=env).stdout)
    assert status["builds"]["failed"] >= 3  # the refused file added nothing


@pytest.mark.skipif(not dqn_available(), reason="needs the dqn extra (stable-baselines3)")
def test_the_dqn_service_keeps_its_own_state_and_resumes_after_a_restart(settings: Settings) -> None:
    dqn = settings.model_copy(update={"autoops_optimizer": "dqn"})
    query = {"repo_size_mb": 3000, "dependency_churn": 0.05, "flaky_share": 0.01}
    with client(dqn) as api:
        for n in range(60):
            failed = n % 2 == 0
            body = BUILD if failed else {**BUILD, "status": "success", "error": None}
            assert api.post("/builds", json=body).status_code == 201
        learned = api.get("/get_best_action", params=query).json()
    with client(dqn) as api:  # a new process on the same database
        again = api.get("/get_best_action", params=query).json()
    assert again == learned
    with client(settings) as api:  # the bandit's state is its own: it has learned nothing
        assert api.get("/get_best_action", params=query).json()["confidence"] < 0.5
