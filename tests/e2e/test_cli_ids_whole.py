"""Every ``opslab`` command that lists things prints the ids a user must copy whole, at 80 columns: runs,
timelines, RCA evidence, incidents, canary history, knowledge, chaos scenarios, lab runs, trials and
comparisons."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import needs_sandbox
from tests.e2e.conftest import Service, clean_env, run_cli

ROOT = Path(__file__).resolve().parents[2]
LONG_RUN = "run-with-a-rather-long-identifier-0042"
LONG_CALL = "call-order-lookup-with-a-long-identifier-7"
LONG_STEP = "step-look-up-order-details-0002"


def at80(data_dir: Path, **extra: str) -> dict[str, str]:
    return clean_env(OPSLAB_DATA_DIR=str(data_dir), COLUMNS="80", **extra)


def long_run(run_001: dict[str, Any]) -> dict[str, Any]:
    run = json.loads(json.dumps(run_001).replace("call-001", LONG_CALL).replace("step-002", LONG_STEP))
    now = datetime.now(UTC)
    run.update(
        run_id=LONG_RUN, started_at=(now - timedelta(seconds=45)).isoformat(), ended_at=now.isoformat()
    )
    for item in (*run["steps"], *run["guardrail_events"]):
        for key in ("started_at", "ended_at", "created_at"):
            if key in item:
                item[key] = run["started_at"]
    return run


def lines_with(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


def test_runs_list_and_timeline_on_the_local_database(tmp_path: Path, run_001: dict[str, Any]) -> None:
    (tmp_path / "run.json").write_text(json.dumps(long_run(run_001)))
    env = at80(tmp_path / "data")
    assert run_cli("runs", "ingest", str(tmp_path / "run.json"), env=env).returncode == 0
    listed = run_cli("runs", "list", env=env)
    assert listed.returncode == 0 and LONG_RUN in listed.stdout, listed.stdout
    assert all(len(line) <= 80 for line in listed.stdout.splitlines()), listed.stdout
    wide = run_cli("runs", "list", "--wide", env=env)
    assert "failed tools" in wide.stdout and LONG_RUN in wide.stdout
    timeline = run_cli("runs", "timeline", LONG_RUN, env=env)
    assert LONG_CALL in timeline.stdout and LONG_STEP in timeline.stdout, timeline.stdout


def test_runs_list_and_rca_evidence_from_a_service(
    start_service: Callable[..., Service], tmp_path: Path, run_001: dict[str, Any]
) -> None:
    svc = start_service()
    (tmp_path / "run.json").write_text(json.dumps(long_run(run_001)))
    env = at80(tmp_path / "cli", OPSLAB_URL=svc.url)
    assert run_cli("runs", "ingest", str(tmp_path / "run.json"), env=env).returncode == 0
    listed = run_cli("runs", "list", "--url", svc.url, env=env)
    assert LONG_RUN in listed.stdout, listed.stdout
    rca = run_cli("rca", "run", LONG_RUN, "--wait", env=env, timeout=120)
    assert rca.returncode == 0, rca.stderr
    assert f"ev_tool_{LONG_CALL}" in rca.stdout, rca.stdout
    (rca_id,) = [line.split()[1] for line in lines_with(rca.stdout, "RCA ")][:1]
    shown = run_cli("rca", "show", rca_id, env=env)
    assert f"ev_tool_{LONG_CALL}" in shown.stdout


def test_responder_incidents(tmp_path: Path) -> None:
    from opslab.responder import Incident
    from opslab.store import SqlIncidentStore, make_engine

    data = tmp_path / "data"
    assert run_cli("db", "upgrade", env=at80(data)).returncode == 0
    engine = make_engine(f"sqlite:///{data / 'opslab.db'}")
    try:
        incident_id = "inc-20260101-120000-5f1c9a-with-a-longer-suffix"
        SqlIncidentStore(engine).save(
            Incident(
                id=incident_id, status="resolved", category="db_pool_exhaustion", opened_at=datetime.now(UTC)
            )
        )
    finally:
        engine.dispose()
    r = run_cli("responder", "incidents", env=at80(data))
    assert r.returncode == 0 and incident_id in r.stdout, r.stdout


def test_canary_history(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "canary").mkdir(parents=True)
    line = {
        "schema_version": 3,
        "started_at": "2026-01-01T12:00:00+00:00",
        "finished_at": "2026-01-01T12:09:00+00:00",
        "decision": "PASS",
        "reason": "P95 improved by 12.5% (>=10%) with an error rate of 0.50%, below the 1% the plan allows",
        "candidate_flags": {"control": {"flow_policy": "aimd"}},
        "delta_p95_pct": -12.5,
        "error_rate_pct": 0.5,
        "applied": True,
    }
    (data / "canary" / "history.jsonl").write_text(json.dumps(line) + "\n")
    r = run_cli("canary", "history", env=at80(data))
    assert r.returncode == 0 and "2026-01-01T12:09:00" in r.stdout and "PASS" in r.stdout, r.stdout


def test_knowledge_list_and_search(tmp_path: Path) -> None:
    doc_id = "checkout-cache-stampede-after-a-price-rotation"
    doc = tmp_path / "doc.md"
    doc.write_text(
        f"---\nschema_version: 1\nid: {doc_id}\nkind: incident\ntitle: Cache stampede on checkout\n---\n\n"
        "# Cache stampede\n\nEvery pricing cache entry expired at once after the rotation.\n"
    )
    env = at80(tmp_path / "data")
    assert run_cli("kb", "add", str(doc), env=env).returncode == 0
    listed = run_cli("kb", "list", env=env)
    assert doc_id in listed.stdout, listed.stdout
    found = run_cli("kb", "search", "cache", "stampede", "pricing", env=env)
    assert doc_id in found.stdout, found.stdout


def test_chaos_scenarios(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    text = (ROOT / "src/opslab/sandbox/chaos/scenarios/bad-deploy.yaml").read_text()
    (folder / "bad-deploy-of-the-release-with-a-long-name.yaml").write_text(text)
    r = run_cli("sandbox", "scenarios", "--folder", str(folder), env=at80(tmp_path / "data"))
    assert r.returncode == 0 and "bad-deploy-of-the-release-with-a-long-name" in r.stdout, r.stdout


@needs_sandbox
@pytest.mark.parametrize("command", ["run", "query", "compare"])
def test_lab_runs_trials_and_comparisons(tmp_path: Path, command: str) -> None:
    project = tmp_path / "proj"
    shutil.copytree(ROOT / "examples/lab-python", project)
    config = project / ".lab" / "experiment.yaml"
    experiment = yaml.safe_load(config.read_text())
    careful, hasty = "careful-step-by-step-arithmetic-with-checks", "hasty-guess-without-any-checking-at-all"
    experiment["variants"]["baseline"]["id"] = careful
    experiment["variants"]["treatments"][0]["id"] = hasty
    experiment["design"]["replications"] = 1
    experiment["dataset"]["limit"] = 2
    config.write_text(yaml.safe_dump(experiment))
    env = at80(tmp_path / "data")
    first = run_cli("lab", "run", ".lab/experiment.yaml", env=env, cwd=project, timeout=300)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (project / ".lab" / "runs").iterdir()
    if command == "run":
        assert careful in first.stdout and hasty in first.stdout and f"run {run_dir.name}" in first.stdout
    elif command == "query":
        sql = "SELECT trial_id, variant_id, task_id, outcome FROM trials"
        r = run_cli("lab", "query", str(run_dir), sql, env=env)
        assert careful in r.stdout and hasty in r.stdout, r.stdout
    else:
        second = run_cli("lab", "run", ".lab/experiment.yaml", env=env, cwd=project, timeout=300)
        assert second.returncode == 0, second.stderr
        run_a, run_b = sorted((project / ".lab" / "runs").iterdir())
        r = run_cli("lab", "compare", str(run_a), str(run_b), env=env)
        assert r.returncode == 0 and careful in r.stdout and hasty in r.stdout, r.stdout
