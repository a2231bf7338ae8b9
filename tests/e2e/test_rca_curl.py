"""The seed's Workflows 1 and 2 with curl against `opslab serve` (embedded backend), and `opslab rca` CLI."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES, needs_curl
from tests.e2e.conftest import Service, clean_env, run_cli

# A licensed subset of the real AgentRx traces (tests/fixtures/agentrx/SOURCE.md): the eval end to end.
AGENTRX = FIXTURES / "agentrx"


def curl(*args: str) -> str:
    return subprocess.run(
        ["curl", "-s", *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout


@needs_curl
def test_workflows_1_and_2_with_curl(start_service: Callable[..., Service], tmp_path: Path) -> None:
    svc = start_service()
    for name in ("run-001-sufficient", "run-002-insufficient"):
        curl(
            "-X",
            "POST",
            f"{svc.url}/agent-runs",
            "-H",
            "Content-Type: application/json",
            "-d",
            f"@{FIXTURES / (name + '.json')}",
        )
    created = json.loads(curl("-X", "POST", f"{svc.url}/agent-runs/run-001-sufficient/rca-runs"))
    rca_id = created["rca_run_id"]
    stream = curl("-N", "--max-time", "30", f"{svc.url}/rca-runs/{rca_id}/stream")
    events = [json.loads(line[5:]) for line in stream.splitlines() if line.startswith("data:")]
    assert events and events[-1] == {**events[-1], "status": "done", "step": "RCA complete", "pct": 100}
    report = json.loads(curl(f"{svc.url}/agent-runs/rca-runs/{rca_id}"))["report"]
    assert report["category"] == "tool_schema_mismatch" and report["insufficient_evidence"] is False
    two = json.loads(curl("-X", "POST", f"{svc.url}/agent-runs/run-002-insufficient/rca-runs"))["rca_run_id"]
    deadline = time.monotonic() + 30
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = json.loads(curl(f"{svc.url}/agent-runs/rca-runs/{two}"))
        if body["status"] == "done":
            break
        time.sleep(0.1)
    assert body["report"]["category"] == "unknown" and body["report"]["insufficient_evidence"] is True
    r = run_cli(
        "rca", "run", "run-001-sufficient", "--wait", "--force", "--json", env=clean_env(OPSLAB_URL=svc.url)
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["report"]["category"] == "tool_schema_mismatch"
    r = run_cli("rca", "show", rca_id, env=clean_env(OPSLAB_URL=svc.url, COLUMNS="200"))
    assert r.returncode == 0 and "tool_schema_mismatch" in r.stdout
    r = run_cli("rca", "show", "nope", env=clean_env(OPSLAB_URL=svc.url))
    assert r.returncode == 4
    r = run_cli("rca", "run", "x", env=clean_env())
    assert r.returncode == 2 and "--url" in r.stderr


def test_import_and_eval_cli(tmp_path: Path) -> None:
    tau = FIXTURES / "tau_sample.json"
    truth = FIXTURES / "tau_sample_truth.json"
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "d"))
    r = run_cli("runs", "import", "--format", "tau-bench", str(tau), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"format": "tau-bench", "runs": 2, "ok": 2, "failed": 0}
    r = run_cli("runs", "show", "tau-1", "--json", env=env)
    run = json.loads(r.stdout)
    assert run["counts"]["tool_calls"] == 1 and run["counts"]["failed_tool_calls"] == 1
    r = run_cli(
        "rca", "eval", "--format", "tau-bench", "--ground-truth", str(truth), str(tau), "--json", env=env
    )
    result = json.loads(r.stdout)
    assert result["n"] == 2 and result["step_accuracy"] == 0.5 and result["insufficient_rate"] == 0.5
    assert result["confident_wrong_rate"] == 0.0 and result["method"]
    r = run_cli(
        "rca", "eval", "--format", "tau-bench", "--ground-truth", str(truth), str(tau), "--cv", "0",
        "--ablation", "--json", env=env,
    )  # fmt: skip
    result = json.loads(r.stdout)
    assert result["cross_validated"]["folds"] == 2 and result["cross_validated"]["n"] == 2
    assert "error" in result["ablation"] and set(result["ablation"]["error"]) >= {
        "step_accuracy",
        "agent_accuracy",
    }
    r = run_cli("rca", "eval", "--format", "nope", "--ground-truth", str(truth), str(tau), env=env)
    assert r.returncode == 2


def test_eval_on_the_real_agentrx_magentic_traces(tmp_path: Path) -> None:
    data = AGENTRX
    r = run_cli(
        "rca",
        "eval",
        "--format",
        "magentic",
        "--ground-truth",
        str(data / "ground_truth" / "magentic_one_ground_truth.json"),
        str(data / "magentic_dataset"),
        "--json",
        env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "d")),
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"] == len(list((data / "magentic_dataset").glob("*.json")))
