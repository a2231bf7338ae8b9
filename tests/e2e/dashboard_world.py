"""A seeded world for the dashboard's browser tests, as a user would make it: the sandbox (`opslab sandbox
up`), the service with the responder on, a lab run of the example project (`opslab lab run`), agent runs
ingested (the seed's two, a real multi-agent transcript imported), a canary job on the sandbox, an
autoops loop, and the sandbox's db pool broken through the chaos server so an incident waits for
approval."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import FIXTURES, ROOT
from tests.e2e.conftest import OPSLAB, Service, clean_env, run_cli, wait_for, wait_http
from tests.ports import free_port

TRANSCRIPT = FIXTURES / "agentrx" / "magentic_dataset"


@dataclass
class World:
    url: str
    data: Path
    project: Path
    chaos: str
    lab_run: str
    procs: list[Service] = field(default_factory=list)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def _start(argv: list[str], env: dict[str, str], log: Path, probe: str) -> Service:
    proc = subprocess.Popen(
        argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    svc = Service(proc, probe.rsplit("/", 1)[0], log)
    wait_http(probe, proc, log)
    return svc


def build_world(root: Path) -> Iterator[World]:
    data, project = root / "data", root / "project"
    shutil.copytree(ROOT / "examples" / "lab-python", project)
    env = clean_env(OPSLAB_DATA_DIR=str(data))
    lab = run_cli("lab", "run", ".lab/experiment.yaml", "--json", env=env, cwd=project, timeout=300)
    assert lab.returncode == 0, lab.stdout + lab.stderr
    lab_run = json.loads(lab.stdout)["run"]["run_id"]

    ports = {part: free_port() for part in ("target", "dependency", "chaos", "actions", "api")}
    procs: list[Service] = []
    try:
        argv = [OPSLAB, "sandbox", "up", "--port", str(ports["target"]), "--dependency-port"]
        argv += [
            str(ports["dependency"]),
            "--chaos-port",
            str(ports["chaos"]),
            "--actions-port",
            str(ports["actions"]),
        ]
        procs.append(_start(argv, env, root / "sandbox.log", f"http://127.0.0.1:{ports['actions']}/healthz"))
        wait_for(lambda: (data / "sandbox" / "endpoints.json").is_file(), bool, 20, "sandbox endpoints")
        serve_env = clean_env(
            OPSLAB_DATA_DIR=str(data),
            OPSLAB_RESPONDER_ENABLED="true",
            OPSLAB_RESPONDER_POLL_INTERVAL_S="1",
            OPSLAB_RESPONDER_SETTLE_S="4",
            OPSLAB_RESPONDER_APPROVAL_RISK="high",  # the production profile: high risk waits for a human
            OPSLAB_LAB_RUNS_DIRS=json.dumps([str(project)]),
        )
        url = f"http://127.0.0.1:{ports['api']}"
        argv = [OPSLAB, "serve", "--host", "127.0.0.1", "--port", str(ports["api"])]
        procs.append(_start(argv, serve_env, root / "serve.log", url + "/healthz"))
        world = World(url, data, project, f"http://127.0.0.1:{ports['chaos']}", lab_run, procs)
        with world.http() as http:
            for name in ("run-001-sufficient.json", "run-002-insufficient.json"):
                assert http.post("/agent-runs", content=(FIXTURES / name).read_bytes()).status_code == 201
            transcript = sorted(TRANSCRIPT.glob("*.json"))[0]
            imported = run_cli(
                "runs", "import", "--format", "magentic", str(transcript), "--url", url, env=env
            )
            assert imported.returncode == 0, imported.stdout + imported.stderr
            plan = {
                "experiment": {
                    "qps": 40.0,
                    "window_sec": 1.0,
                    "rounds": 2,
                    "warmup_sec": 0,
                    "flow_policy": "aimd",
                    "target_p95": 1200,
                    "routing_mode": "rules",
                    "topk_threshold": 32,
                },
                "target": {
                    "base_url": f"http://127.0.0.1:{ports['target']}",
                    "flags_path": "/api/flags",
                    "health_path": "/api/lab/config",
                    "request_path": "/api/search?q=canary",
                    "timeout_s": 5,
                },
                "time_budget": 60,
                "min_samples_per_arm": 10,
            }
            created = http.post("/canary/runs", json={"plan": plan})
            assert created.status_code == 202, created.text
            canary_id = created.json()["canary_run_id"]
            assert http.post("/autoops/loop", json={"builds": 30, "interval_s": 0}).status_code == 202
            wait_for(
                lambda: http.get(f"/canary/runs/{canary_id}").json()["status"],
                lambda s: s in ("done", "failed"),
                60,
                "the canary job",
            )
            wait_for(
                lambda: http.get("/agent/status").json(),
                lambda s: s["state"] == "watching" and s["baseline"].get("samples", 0) >= 3,
                30,
                "a healthy baseline",
            )
        yield world
    finally:
        for svc in reversed(procs):
            svc.stop()


def break_the_pool(world: World) -> str:
    """Break the sandbox's db pool; return the incident that then waits for approval."""
    token = (world.data / "sandbox" / "chaos-token").read_text().strip()
    r = httpx.post(
        f"{world.chaos}/api/v1/break/db_pool", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.json()["status"] == "active"
    with world.http() as http:
        incidents = wait_for(
            lambda: http.get("/agent/incidents").json()["incidents"],
            lambda i: bool(i) and i[0]["status"] == "awaiting_approval",
            90,
            "an incident awaiting approval",
        )
    return str(incidents[0]["id"])
