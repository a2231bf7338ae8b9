"""The seed's testing workflow, as a user runs it: `opslab sandbox up` and `opslab serve` with the
responder on, both on the same data dir and nothing else; the seed's curl breaks the pool on the chaos
server; the responder detects, diagnoses, remediates (asking a human for the high-risk step) and verifies
by itself. Then what it left behind: the incident with its whole history, its SSE stream, the audit
trail, the action server's own audit, a learned incident document, and its run in the telemetry store."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab.responder import NODES
from tests.e2e.conftest import OPSLAB, Service, clean_env, run_cli, wait_for, wait_http
from tests.ports import free_port


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[dict[str, str]]:
    ports = {part: free_port() for part in ("target", "dependency", "chaos", "actions")}
    log = tmp_path / "sandbox.log"
    argv = [
        OPSLAB,
        "sandbox",
        "up",
        "--port",
        str(ports["target"]),
        "--dependency-port",
        str(ports["dependency"]),
    ]
    argv += ["--chaos-port", str(ports["chaos"]), "--actions-port", str(ports["actions"])]
    proc = subprocess.Popen(
        argv,
        env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data")),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    urls = {part: f"http://127.0.0.1:{port}" for part, port in ports.items()}
    try:
        wait_http(urls["actions"] + "/healthz", proc, log)
        deadline = time.monotonic() + 20
        while not (tmp_path / "data" / "sandbox" / "endpoints.json").is_file():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        yield urls
    finally:
        Service(proc, "", log).stop()


def test_break_the_pool_and_the_responder_fixes_it_by_itself(
    tmp_path: Path, sandbox: dict[str, str], start_service: Callable[..., Service]
) -> None:
    data = tmp_path / "data"
    endpoints = json.loads((data / "sandbox" / "endpoints.json").read_text())
    assert set(endpoints) >= {"target", "actions"} and sandbox["chaos"] not in json.dumps(endpoints)
    env = clean_env(
        OPSLAB_DATA_DIR=str(data),
        OPSLAB_RESPONDER_ENABLED="true",
        POLL_INTERVAL_SECONDS="1",  # the seed's own setting names work
        OPSLAB_RESPONDER_SETTLE_S="6",
    )
    svc = start_service(env=env)
    http = httpx.Client(base_url=svc.url, timeout=30)
    wait_for(
        lambda: http.get("/agent/status").json(),
        lambda s: s["state"] == "watching" and s["baseline"].get("samples", 0) >= 4,
        30,
        "a healthy baseline",
    )
    assert http.get("/agent/incidents").json()["incidents"] == []  # healthy polls open nothing

    # The seed: curl -X POST "http://localhost:8080/api/v1/break/db_pool" (no end: the leak keeps leaking),
    # with the chaos server's token; then nobody does anything.
    token = (data / "sandbox" / "chaos-token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{sandbox['chaos']}/api/v1/break/db_pool", timeout=10).status_code == 401
    brk = httpx.post(f"{sandbox['chaos']}/api/v1/break/db_pool", headers=auth, timeout=10).json()
    assert brk["status"] == "active"

    def incidents() -> list[dict[str, Any]]:
        return list(http.get("/agent/incidents").json()["incidents"])

    finished = wait_for(
        incidents,
        lambda i: bool(i) and i[0]["status"] in ("resolved", "escalated", "awaiting_approval"),
        120,
        "the incident's end",
    )
    assert len(finished) == 1, finished
    incident_id = finished[0]["id"]
    done = http.get(f"/agent/incidents/{incident_id}").json()
    assert done["status"] == "resolved", done["recommendation"]
    assert [a["action"] for a in done["actions"]] == ["recycle-pool", "remediate-db-pool-exhaustion"]
    assert done["actions"][1]["params"] == {"action": "escalate_to_db_restart"}  # the recycle did not hold
    nodes = [s["node"] for s in done["steps"]]
    assert set(NODES) <= set(nodes)  # all nine of the seed's steps
    assert done["diagnosis"]["evidence_ids"] and done["diagnosis"]["runbook_id"] == "db-pool-exhaustion"
    assert done["learned_document"] and (data / "knowledge" / f"{done['learned_document']}.md").is_file()

    # The whole story again from the SSE stream, from the first step.
    with http.stream("GET", f"/agent/incidents/{incident_id}/stream") as stream:
        events = [json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")]
    assert [e["node"] for e in events] == nodes and events[-1]["status"] == "resolved"

    audit = [
        r["decision"] for r in http.get("/agent/audit", params={"incident_id": incident_id}).json()["records"]
    ]
    assert "approval_required" not in audit and audit.index("executed") < audit.index("resolved")
    server_audit = [json.loads(line) for line in (data / "sandbox" / "audit.jsonl").read_text().splitlines()]
    assert [r["action"] for r in server_audit if r["status"] == "success"][-2:] == [
        "recycle-pool",
        "remediate-db-pool-exhaustion",
    ]

    # The responder records its run once the incident has ended (right after its last step is saved).
    runs = wait_for(
        lambda: http.get("/agent-runs", params={"agent_name": "opslab-responder"}).json()["items"],
        bool,
        30,
        "the responder's own agent run",
    )
    assert len(runs) == 1 and runs[0]["status"] == "success"
    listed = run_cli("responder", "incidents", "--url", svc.url, "--json", env=clean_env(), timeout=60)
    assert json.loads(listed.stdout)["incidents"][0]["status"] == "resolved"


def test_responder_run_shows_what_each_poll_saw_and_an_experiment_the_target_announces(
    tmp_path: Path, sandbox: dict[str, str]
) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
    once = run_cli("responder", "run", "--once", "--json", env=env)
    assert once.returncode == 0, once.stderr
    out = json.loads(once.stdout)
    assert out["incident"] is None and out["poll"]["health_status"] == "healthy"
    assert out["poll"]["verdict"] in ("quiet", "anomalous") and out["poll"]["experiments"] == []
    # The target runs an A/B experiment on itself: its health says so, and so does the responder's poll.
    started = httpx.post(
        sandbox["target"] + "/api/lab/run",
        json={"candidate_flags": {}, "qps": 5, "window_sec": 30, "rounds": 1},
        timeout=10,
    )
    assert started.status_code == 202, started.text
    seen = json.loads(run_cli("responder", "run", "--once", "--json", env=env).stdout)
    assert "A/B experiment" in seen["poll"]["experiments"][0]
    # Watching: a line per poll, as it happens.
    proc = subprocess.Popen(
        [OPSLAB, "responder", "run", "--poll-interval", "0.5", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(30)
    assert all("poll" in line and line["poll"]["verdict"] for line in lines)
    text = run_cli("responder", "run", "--once", env=env)
    assert text.returncode == 0 and " poll " in text.stdout and "health healthy" in text.stdout
