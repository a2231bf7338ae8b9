"""`opslab kb` as a user runs it: the shipped runbooks, adding your own, refusals and --json."""

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
