"""RCA on the distributed backend for real: Redis, RQ, two `opslab worker` processes, SIGKILL mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab.api import create_app
from opslab.config import Settings
from opslab.llm.fake import fake_chat_app
from opslab.serving import ServerThread
from tests.integration.test_rca_jobs import wait_done
from tests.workers import start_workers, stop_workers, worker_env


@pytest.fixture
def cluster(
    redis_url: str, tmp_path: Path, run_001: dict[str, Any], run_002: dict[str, Any]
) -> Iterator[Callable[..., tuple[httpx.Client, list[subprocess.Popen[bytes]]]]]:
    procs: list[subprocess.Popen[bytes]] = []
    servers: list[ServerThread] = []
    clients: list[httpx.Client] = []

    def start(
        db_url: str, *, workers: int = 2, llm_url: str | None = None
    ) -> tuple[httpx.Client, list[subprocess.Popen[bytes]]]:
        env = worker_env(tmp_path, redis_url=redis_url, db_url=db_url, lease_s=2)
        queue = env["OPSLAB_JOB_QUEUE"]
        if llm_url:
            env.update(OPSLAB_LLM_BASE_URL=llm_url, OPSLAB_LLM_MODEL="slow", OPSLAB_LLM_TIMEOUT_S="30")
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=db_url,
            redis_url=redis_url,
            job_queue=queue,
            job_lease_s=2,
        )
        server = ServerThread(create_app(settings)).start()
        servers.append(server)
        mine = start_workers(env, tmp_path, workers)
        procs.extend(mine)
        client = httpx.Client(base_url=server.url, timeout=30)
        clients.append(client)
        for run in (run_001, run_002):
            client.post("/agent-runs", json=run).raise_for_status()
        return client, mine

    yield start
    for c in clients:
        c.close()
    stop_workers(procs)
    for s in servers:
        s.stop()


def test_workflows_run_on_two_rq_workers(cluster: Callable[..., Any], db_url: str) -> None:
    api, _ = cluster(db_url)
    ids = [
        api.post(f"/agent-runs/{rid}/rca-runs").json()["rca_run_id"]
        for rid in ("run-001-sufficient", "run-002-insufficient")
    ]
    one, two = (wait_done(api, i, seconds=60) for i in ids)
    assert one["report"]["category"] == "tool_schema_mismatch" and one["attempts"] == 1
    assert two["report"]["insufficient_evidence"] is True
    forced = api.post("/agent-runs/run-001-sufficient/rca-runs", params={"force": "true"}).json()[
        "rca_run_id"
    ]
    lines = []
    with api.stream("GET", f"/rca-runs/{forced}/stream", timeout=60) as r:
        lines = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    assert lines[-1]["status"] == "done"


def test_a_worker_killed_mid_job_does_not_lose_it(cluster: Callable[..., Any], tmp_path: Path) -> None:
    llm = ServerThread(fake_chat_app(lambda _: json.dumps({"hypotheses": []}), delay_s=4.0)).start()
    try:
        api, workers = cluster(f"sqlite:///{tmp_path / 'kill.db'}", llm_url=llm.url)
        rca_id = api.post("/agent-runs/run-001-sufficient/rca-runs").json()["rca_run_id"]
        deadline = time.monotonic() + 30
        body = api.get(f"/rca-runs/{rca_id}").json()
        while body["step"] != "Generating report" and time.monotonic() < deadline:
            time.sleep(0.05)
            body = api.get(f"/rca-runs/{rca_id}").json()
        assert body["status"] == "running", body
        victim = next(p for p in workers if str(p.pid) in _owner(tmp_path / "kill.db", rca_id))
        os.kill(victim.pid, signal.SIGKILL)
        done = wait_done(api, rca_id, seconds=60)
        assert done["status"] == "done" and done["attempts"] == 2
        assert done["report"]["category"] == "tool_schema_mismatch"
    finally:
        llm.stop()


def _owner(db: Path, job_id: str) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return str(row[0] if row else "")


def test_redis_down_is_a_clear_503_with_nothing_written(tmp_path: Path, run_001: dict[str, Any]) -> None:
    settings = Settings(data_dir=tmp_path / "d", redis_url="redis://127.0.0.1:1/0")
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        api.post("/agent-runs", json=run_001).raise_for_status()
        r = api.post("/agent-runs/run-001-sufficient/rca-runs")
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
        assert api.get("/agent-runs/run-001-sufficient/rca-runs").json()["items"] == []
