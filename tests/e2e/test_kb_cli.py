"""`opslab kb` as a user runs it: the shipped runbooks, adding your own (front matter or the AutoOps seed's
plain incidents.md), the seed's knowledge base read from the project folder, refusals and --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import opslab.knowledge
from tests.e2e.conftest import clean_env, run_cli

NEW_RUNBOOK = """---
id: disk-full
title: Disk full on the vector store
kind: runbook
categories: [retrieval_empty]
tags: [disk, storage]
symptoms:
  - writes to the vector store fail with no space left on device
signals:
  - ENOSPC in the indexer logs
verification_steps:
  - Check free space on the vector store volume
actions:
  - type: config_change
    title: Grow the volume
    description: Resize the volume and alert at 80 % usage.
    priority: high
---
# Disk full

The indexer could not write new embeddings because its volume filled up.
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), **extra)


def _json(*args: str, env: dict[str, str]) -> tuple[int, Any, str]:
    r = run_cli("kb", *args, "--json", env=env, timeout=60)
    return r.returncode, json.loads(r.stdout) if r.returncode == 0 else None, r.stderr


def test_list_shows_the_builtin_runbooks(tmp_path: Path) -> None:
    code, out, err = _json("list", env=_env(tmp_path))
    assert code == 0, err
    ids = {d["id"] for d in out["documents"]}
    shipped = {p.stem for p in (Path(opslab.knowledge.__file__).parent / "runbooks").glob("*.md")}
    assert {"tool-schema-mismatch", "rate-limited", "insufficient-telemetry"} <= ids and ids == shipped
    assert all(d["source"] == "builtin" and d["kind"] == "runbook" for d in out["documents"])
    assert all(Path(d["path"]).is_file() for d in out["documents"])
    table = run_cli("kb", "list", env=_env(tmp_path), timeout=60)
    assert table.returncode == 0 and "tool-schema-mismatch" in table.stdout


def test_search_prints_the_tool_schema_runbook_first(tmp_path: Path) -> None:
    r = run_cli("kb", "search", "tool schema validation error", env=_env(tmp_path), timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.lstrip("│ ").startswith(("1 ", "2 "))]
    assert rows and "tool-schema-mismatch" in rows[0], r.stdout
    code, out, err = _json("search", "429", "too", "many", "requests", "--k", "2", env=_env(tmp_path))
    assert code == 0, err
    assert out["query"] == "429 too many requests" and len(out["hits"]) == 2
    top = out["hits"][0]
    assert top["rank"] == 1 and top["id"] == "rate-limited" and top["score"] > 0 and top["snippet"]


def test_add_a_runbook_then_find_it_by_search(tmp_path: Path) -> None:
    env = _env(tmp_path)
    source = tmp_path / "disk-full.md"
    source.write_text(NEW_RUNBOOK)
    code, out, err = _json("add", str(source), env=env)
    stored = tmp_path / "data" / "knowledge" / "disk-full.md"
    assert code == 0, err
    assert out == {
        "ok": True,
        "id": "disk-full",
        "title": "Disk full on the vector store",
        "kind": "runbook",
        "path": str(stored),
        "documents": [{"id": "disk-full", "title": "Disk full on the vector store", "kind": "runbook"}],
    }
    assert stored.read_text() == NEW_RUNBOOK
    code, out, _ = _json("search", "indexer", "cannot", "write:", "no", "space", "left", env=env)
    assert out["hits"][0]["id"] == "disk-full" and out["hits"][0]["source"] == "user"
    code, out, _ = _json("list", env=env)
    assert [d["id"] for d in out["documents"]][-1] == "disk-full"
    again = run_cli("kb", "add", str(source), env=env, timeout=60)
    assert again.returncode == 5 and "disk-full" in again.stderr and "already exists" in again.stderr


def test_add_with_bad_front_matter_exits_2_naming_the_field_and_writes_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path)
    source = tmp_path / "bad.md"
    source.write_text(NEW_RUNBOOK.replace("priority: high", "priority: urgent"))
    r = run_cli("kb", "add", str(source), env=env, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "bad.md" in r.stderr and "actions[0].priority" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "data" / "knowledge").exists()


def test_knowledge_dir_setting_chooses_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "team-runbooks"
    env = _env(tmp_path, OPSLAB_KNOWLEDGE_DIR=str(folder))
    source = tmp_path / "disk-full.md"
    source.write_text(NEW_RUNBOOK)
    assert run_cli("kb", "add", str(source), env=env, timeout=60).returncode == 0
    assert (folder / "disk-full.md").is_file() and not (tmp_path / "data" / "knowledge").exists()


def test_an_empty_query_exits_2_naming_query(tmp_path: Path) -> None:
    r = run_cli("kb", "search", "  ", env=_env(tmp_path), timeout=60)
    assert r.returncode == 2 and "query" in r.stderr


# The AutoOps seed's agents/responder_agent/knowledge_base/incidents.md: headings and text, no front matter.
SEED_INCIDENTS = """# Build Incidents

## Gradle daemon crash
Error: The Gradle Daemon disappeared unexpectedly (it may have been killed or may have crashed)
Fix: raise org.gradle.jvmargs -Xmx and disable the daemon on CI runners.

## Flux reconcile stuck
Error: kustomization path not found
Fix: check the path in the Kustomization spec.
"""


def test_add_a_plain_incidents_file_then_search_finds_each_section(tmp_path: Path) -> None:
    env = _env(tmp_path)
    source = tmp_path / "incidents.md"
    source.write_text(SEED_INCIDENTS)
    r = run_cli("kb", "add", str(source), env=env, timeout=60)
    stored = tmp_path / "data" / "knowledge" / "incidents.md"
    assert r.returncode == 0, r.stderr
    assert "added 2 incidents" in r.stdout and "incidents-flux-reconcile-stuck" in r.stdout
    assert stored.read_text() == SEED_INCIDENTS
    code, out, err = _json("search", "The", "Gradle", "Daemon", "disappeared", "unexpectedly", env=env)
    assert code == 0, err
    top = out["hits"][0]
    assert (top["id"], top["kind"], top["source"], top["path"]) == (
        "incidents-gradle-daemon-crash",
        "incident",
        "user",
        str(stored),
    )
    assert "Gradle Daemon disappeared" in top["snippet"]
    code, out, _ = _json("search", "kustomization", "path", "not", "found", "--k", "1", env=env)
    assert out["hits"][0]["id"] == "incidents-flux-reconcile-stuck"
    code, out, _ = _json("show", "incidents-flux-reconcile-stuck", env=env)
    assert out["signals"] == ["kustomization path not found"] and out["remediation"] == []
    assert [a["title"] for a in out["actions"]] == ["Check the path in the Kustomization spec"]
    again = run_cli("kb", "add", str(source), env=env, timeout=60)
    assert again.returncode == 5 and "already exists" in again.stderr


def test_add_plain_json_lists_every_document(tmp_path: Path) -> None:
    source = tmp_path / "incidents.md"
    source.write_text(SEED_INCIDENTS)
    code, out, err = _json("add", str(source), env=_env(tmp_path))
    assert code == 0, err
    assert out["ok"] and out["id"] == "incidents-gradle-daemon-crash"
    assert out["path"] == str(tmp_path / "data" / "knowledge" / "incidents.md")
    assert out["documents"] == [
        {"id": "incidents-gradle-daemon-crash", "title": "Gradle daemon crash", "kind": "incident"},
        {"id": "incidents-flux-reconcile-stuck", "title": "Flux reconcile stuck", "kind": "incident"},
    ]


def test_add_an_empty_file_exits_2_naming_it(tmp_path: Path) -> None:
    source = tmp_path / "incidents.md"
    source.write_text("")
    r = run_cli("kb", "add", str(source), env=_env(tmp_path), timeout=60)
    assert r.returncode == 2 and "incidents.md: file: empty" in r.stderr and "Traceback" not in r.stderr


def test_the_seed_knowledge_base_in_the_project_folder_is_searched(tmp_path: Path) -> None:
    project = tmp_path / "project"
    seed = project / "agents" / "responder_agent" / "knowledge_base" / "incidents.md"
    seed.parent.mkdir(parents=True)
    seed.write_text(SEED_INCIDENTS)
    env = _env(tmp_path)
    r = run_cli("kb", "search", "flux", "kustomization", "path", "--json", env=env, cwd=project, timeout=60)
    assert r.returncode == 0, r.stderr
    top = json.loads(r.stdout)["hits"][0]
    assert (top["id"], top["source"], top["path"]) == ("incidents-flux-reconcile-stuck", "user", str(seed))
    elsewhere = run_cli("kb", "list", "--kind", "incident", "--json", env=env, cwd=tmp_path, timeout=60)
    assert elsewhere.returncode == 0 and json.loads(elsewhere.stdout)["documents"] == []
