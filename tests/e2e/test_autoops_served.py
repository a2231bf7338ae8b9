"""AutoOps as a user runs it, in real processes on free ports over one database: `opslab autoops serve` (the
seed's continuous mode) and `opslab serve` both answer "no known fix" for an error no runbook covers, with
the nearest document as context; both report on /metrics the builds and the optimizer confidence that
`opslab autoops status` reports, whichever process ran the builds; the CLI's responder and importer say the
same in plain text."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.e2e.conftest import Service, clean_env, run_cli, wait_for

SSH_TIMEOUT = "ssh: connect to host git.internal port 22: Connection timed out"
GRADLE = "The Gradle Daemon disappeared unexpectedly (it may have been killed or may have crashed)"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def serve(start_service: Callable[..., Service]) -> Callable[..., Service]:
    """``serve("autoops", "serve")`` or ``serve("serve")`` on the test's data folder."""
    return lambda *command: start_service(command=command, ready="/metrics", name="-".join(command))


def series(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The autoops_* samples of a service's /metrics, by name and labels."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    text = httpx.get(url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("autoops_"):
                found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def test_both_services_answer_no_known_fix_with_the_nearest_document_as_context(
    serve: Callable[..., Service],
) -> None:
    for svc in (serve("autoops", "serve"), serve("serve")):
        ssh = httpx.post(svc.url + "/suggest_fix", json={"error": SSH_TIMEOUT}, timeout=30).json()
        assert ssh["outcome"] == "no_known_fix" and ssh["suggestion"].startswith("no known fix"), ssh
        assert ssh["document_id"] is None and ssh["source"] == "none" and ssh["actions"] == []
        nearest = ssh["nearest"]
        assert nearest["document_id"] == "prometheus-target-down" and nearest["score"] > 0
        assert nearest["confidence"] < nearest["min_confidence"]
        gradle = httpx.post(svc.url + "/suggest_fix", json={"status": "failed", "error": GRADLE}, timeout=30)
        assert gradle.json()["outcome"] == "no_known_fix" and gradle.json()["document_id"] is None
        oom = httpx.post(svc.url + "/suggest_fix", json={"error": "OOMKilled"}, timeout=30).json()
        assert oom["outcome"] == "fix" and oom["document_id"] == "build-oom" and oom["nearest"] is None
        assert oom["confidence"] == 1.0 and oom["suggestion"].startswith("Increase CI runner memory")


def test_every_process_reports_the_builds_and_confidence_autoops_status_reports(
    serve: Callable[..., Service], data: Path
) -> None:
    services = [serve("autoops", "serve"), serve("serve")]
    env = clean_env(OPSLAB_DATA_DIR=str(data))
    imported = run_cli("autoops", "import", str(ROOT / "examples" / "ci-history.jsonl"), env=env)
    assert imported.returncode == 0, imported.stderr
    ran = run_cli("autoops", "run", "--builds", "4", "--seed", "3", env=env)
    assert ran.returncode == 0, ran.stderr
    status = json.loads(run_cli("autoops", "status", "--json", env=env).stdout)
    total = sum(status["builds"].values())
    assert total == 34
    for svc in services:  # neither ran a build: every figure comes from the database
        found = wait_for(
            lambda svc=svc: series(svc.url),
            lambda s: sum(s.get("autoops_builds_total", {}).values()) == total,
            30,
            f"{svc.url}/metrics counting the {total} stored builds",
        )
        by_status = {dict(k)["status"]: v for k, v in found["autoops_build_duration_seconds_count"].items()}
        assert by_status == {"success": status["builds"]["success"], "failed": status["builds"]["failed"]}
        assert found["autoops_optimizer_confidence"][()] == pytest.approx(
            status["best_action"]["confidence"], abs=1e-12
        )


def test_the_cli_says_no_known_fix_and_an_import_names_every_bad_line(tmp_path: Path) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
    r = run_cli("autoops", "suggest", SSH_TIMEOUT, env=env)
    assert r.returncode == 0 and r.stdout.startswith("no known fix"), r.stderr
    assert "nearest, not a fix: prometheus-target-down" in r.stdout
    fixed = json.loads(run_cli("autoops", "suggest", "OOMKilled", "--json", env=env).stdout)
    assert fixed["outcome"] == "fix" and fixed["document_id"] == "build-oom"

    good = (ROOT / "examples" / "ci-history.jsonl").read_text().splitlines()[0]
    history = tmp_path / "builds.jsonl"
    history.write_text(
        "\n".join(
            [
                good,
                '{"config": {"memory_gb": 3}, "context": {}, "status": "success", "duration": 3}',
                good,
                "{not json",
            ]
        )
        + "\n"
    )
    r = run_cli("autoops", "import", str(history), env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert f"{history}:2: config.memory_gb" in r.stderr and f"{history}:4: body" in r.stderr, r.stderr
    r = run_cli("autoops", "import", str(history), "--json", env=env)
    details = json.loads(r.stdout)["error"]["details"]
    assert r.returncode == 2 and details["lines"] == [2, 4]
    assert [(e["field"], e["line"]) for e in details["errors"]] == [("config.memory_gb", 2), ("body", 4)]
    history.write_text(good + "\n" + '{"config": {}, "context": {}, "status": "failed", "duration": 3}\n')
    r = run_cli("autoops", "import", str(history), env=env)
    assert r.returncode == 2 and f"{history}:2: error: a failed build needs its error text" in r.stderr
    counts = json.loads(run_cli("autoops", "status", "--json", env=env).stdout)["builds"]
    assert counts == {}  # refused files store nothing
