"""`opslab serve` + the seed's curl commands, and the CLI against the service and the local database."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import FIXTURES, needs_curl
from tests.e2e.conftest import Service, clean_env, run_cli


@needs_curl
def test_seed_curl_commands_work_verbatim(start_service: Callable[..., Service], tmp_path: Path) -> None:
    svc = start_service()
    script = (FIXTURES / "seed_workflows.sh").read_text().replace("http://localhost:8000", svc.url)
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    ingest, overview = out.split("--- workflow 3")
    assert json.loads(ingest.split("--- workflow 1 step 1")[1])["run_id"] == "run-001-sufficient"
    body = json.loads(overview)
    assert set(body) >= {
        "total_runs",
        "success_rate",
        "top_failing_tools",
        "p95_step_latency_ms",
        "total_cost_usd",
    }
    assert httpx.get(svc.url + "/agent-runs/run-001-sufficient", timeout=30).json()["counts"]["steps"] == 4


def test_cli_against_the_service(
    start_service: Callable[..., Service], tmp_path: Path, run_001: dict[str, Any], run_002: dict[str, Any]
) -> None:
    svc = start_service()
    env = clean_env(OPSLAB_URL=svc.url)
    jsonl = tmp_path / "runs.jsonl"
    jsonl.write_text(json.dumps(run_001) + "\n" + json.dumps(run_002) + "\n{broken\n")
    r = run_cli("runs", "ingest", str(jsonl), env=env)
    assert r.returncode == 2, r.stderr
    assert "2 created" in r.stdout and "line 3" in r.stderr
    r = run_cli("runs", "show", "run-001-sufficient", "--json", env=env)
    assert json.loads(r.stdout)["counts"]["tool_calls"] == 3
    r = run_cli("runs", "timeline", "run-001-sufficient", env=clean_env(OPSLAB_URL=svc.url, COLUMNS="200"))
    assert r.returncode == 0 and "guard-001" in r.stdout and "order_lookup_api" in r.stdout
    r = run_cli("metrics", "overview", "--hours", "1000000", "--json", "--url", svc.url, env=clean_env())
    assert json.loads(r.stdout)["total_runs"] == 2
    r = run_cli("runs", "show", "no-such-run", env=env)
    assert r.returncode == 4 and "not_found" in r.stderr
    r = run_cli("runs", "ingest", "-", env=env, stdin=json.dumps([run_001]))
    assert r.returncode == 0 and "1 updated" in r.stdout
    # Items count from 1, as lines do, and an item's every wrong field is named.
    bad = {
        "run_id": "bad-1",
        "agent_name": "a",
        "status": "bogus",
        "steps": [{"step_id": "s", "status": "x"}],
    }
    r = run_cli("runs", "ingest", "-", env=env, stdin=json.dumps([run_001, bad]))
    assert r.returncode == 2 and "item 2 bad-1:" in r.stderr and "(and " not in r.stderr
    assert "    status:" in r.stderr and "steps[0].status:" in r.stderr and "started_at:" in r.stderr
    out = json.loads(run_cli("runs", "ingest", "-", "--json", env=env, stdin=json.dumps([bad])).stdout)
    assert out["failures"][0]["item"] == 1
    r = run_cli("runs", "list", "--url", "notaurl", env=clean_env())
    assert r.returncode == 2 and "--url" in r.stderr and "invalid_input" in r.stderr


def test_cli_local_mode_shares_the_database_with_the_service(
    start_service: Callable[..., Service], tmp_path: Path, run_001: dict[str, Any]
) -> None:
    data = tmp_path / "data"
    svc = start_service(env=clean_env(OPSLAB_DATA_DIR=str(data)))
    path = tmp_path / "one.json"
    path.write_text(json.dumps(run_001))
    r = run_cli("runs", "ingest", str(path), env=clean_env(OPSLAB_DATA_DIR=str(data)))
    assert r.returncode == 0, r.stderr
    assert httpx.get(svc.url + "/agent-runs/run-001-sufficient", timeout=30).status_code == 200
    r = run_cli("runs", "list", "--json", env=clean_env(OPSLAB_DATA_DIR=str(data)))
    assert [i["run_id"] for i in json.loads(r.stdout)["items"]] == ["run-001-sufficient"]
    r = run_cli("runs", "ingest", str(tmp_path / "missing.json"), env=clean_env(OPSLAB_DATA_DIR=str(data)))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_db_upgrade_on_postgres_and_serve_on_it(
    postgres_url: str, start_service: Callable[..., Service], tmp_path: Path, run_001: dict[str, Any]
) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "pg"), OPSLAB_DATABASE_URL=postgres_url)
    r = run_cli("db", "upgrade", env=env)
    assert r.returncode == 0 and "revision" in r.stdout, r.stderr
    svc = start_service(env=env, name="serve-pg")
    assert httpx.post(
        svc.url + "/agent-runs", json={**run_001, "run_id": "pg-e2e"}, timeout=30
    ).status_code in (200, 201)
    r = run_cli("runs", "show", "pg-e2e", "--json", env=env)
    assert json.loads(r.stdout)["run_id"] == "pg-e2e"
    r = run_cli(
        "runs",
        "show",
        "x",
        env=clean_env(OPSLAB_DATABASE_URL="mysql://nope/db", OPSLAB_DATA_DIR=str(tmp_path / "m")),
    )
    assert r.returncode != 0 and "database_url" in r.stderr


def test_version_and_demo(tmp_path: Path) -> None:
    r = run_cli("version", env=clean_env())
    assert r.returncode == 0 and r.stdout.startswith("opslab ")
    r = run_cli("demo", env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "demo"), COLUMNS="160"), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "run-001-sufficient" in r.stdout and "tool_schema_mismatch" in r.stdout
    assert "hasty vs careful" in r.stdout and "stopped cleanly" in r.stdout
    assert "opslab demo: 5/5 steps ok" in r.stdout, r.stdout[-3000:]
    for capability in ("RCA", "lab", "canary", "responder", "autoops"):
        assert f"│ {capability}" in r.stdout
    assert "  dashboard: http://127.0.0.1:" in r.stdout
    # its links point at the service it stopped: it says so, and how to keep it up
    assert "has stopped with the demo" in r.stdout and "opslab demo --keep-running" in r.stdout
    assert "decisive step" in r.stdout and "db_pool_exhaustion" in r.stdout and "suggested fix" in r.stdout
    summary = json.loads((tmp_path / "demo" / "demo" / "summary.json").read_text())
    assert [s["capability"] for s in summary if s["ok"]] == ["RCA", "lab", "canary", "responder", "autoops"]
    # the seed's sample runs (dated 2024 in the seed) were ingested as of now: the last day shows them
    r = run_cli("metrics", "overview", "--json", env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "demo")))
    day = json.loads(r.stdout)
    assert day["success_rate"] is not None and day["success_rate"] < 100, day
    assert {t["tool"] for t in day["top_failing_tools"]} >= {"order_lookup_api"}, day


def test_rca_without_a_service_says_it_needs_one(tmp_path: Path) -> None:
    r = run_cli("rca", "run", "run-001-sufficient", env=clean_env(OPSLAB_DATA_DIR=str(tmp_path)))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--url" in lines[0] and "OPSLAB_URL" in lines[0], r.stderr


def test_runs_export_delete_and_prune_locally_and_through_the_service(
    start_service: Callable[..., Service], tmp_path: Path, run_001: dict[str, Any]
) -> None:
    local = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
    path = tmp_path / "one.json"
    path.write_text(json.dumps({**run_001, "started_at": "2024-01-15T10:30:00Z"}))
    assert run_cli("runs", "ingest", str(path), env=local).returncode == 0
    out = tmp_path / "run.json"
    r = run_cli("runs", "export", "run-001-sufficient", "-o", str(out), env=local)
    assert r.returncode == 0, r.stderr
    exported = json.loads(out.read_text())
    assert exported["run"]["run_id"] == "run-001-sufficient" and exported["rca"] == []
    r = run_cli("runs", "export", "run-001-sufficient", "--format", "otlp", env=local)
    spans = json.loads(r.stdout)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert any(s["name"].startswith("execute_tool") for s in spans)
    svc = start_service(env=local)
    remote = clean_env(OPSLAB_URL=svc.url)
    r = run_cli("runs", "prune", "--older-than", "30d", "--json", env=remote)
    assert r.returncode == 0 and json.loads(r.stdout)["deleted"] == 1, r.stderr
    r = run_cli("runs", "delete", "run-001-sufficient", env=remote)
    assert r.returncode == 4 and "not_found" in r.stderr
    r = run_cli("runs", "prune", "--older-than", "soon", env=local)
    assert r.returncode == 2 and "--older-than" in r.stderr
