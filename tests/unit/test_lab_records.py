"""The lab's files as typed records: today's round-trip, older files still load, broken ones are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opslab.errors import InvalidInput, NotFound
from opslab.lab import Manifest, TrialRecord
from opslab.lab.artifacts import read_model, write_model

# A manifest as the first runner wrote it: no overrides, isolation, retries or runner fields.
OLD_MANIFEST = {
    "schema_version": 1,
    "run_id": "run_20250101_000000_abcd",
    "experiment_id": "e",
    "experiment_path": "/p/.lab/experiment.yaml",
    "project_root": "/p",
    "dataset_path": "/p/data/tasks.jsonl",
    "created_at": "2025-01-01T00:00:00+00:00",
    "finished_at": None,
    "status": "running",
    "total_trials": 4,
    "from_the_future": {"kept": True},
}


def test_an_older_manifest_loads_with_defaults_and_keeps_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(OLD_MANIFEST))
    m = read_model(path, Manifest)
    assert m.retries == [] and m.overrides == {} and m.isolation.network_enforced is False
    m.status = "completed"
    write_model(path, m)
    again = json.loads(path.read_text())
    assert again["from_the_future"] == {"kept": True} and again["status"] == "completed"
    assert again["created_at"] == "2025-01-01T00:00:00+00:00"  # the format files have always had


def test_a_broken_record_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({**OLD_MANIFEST, "status": "sideways"}))
    with pytest.raises(InvalidInput) as err:
        read_model(path, Manifest)
    assert err.value.details["errors"][0]["field"] == "manifest.json.status"
    with pytest.raises(NotFound):
        read_model(tmp_path / "nothing.json", Manifest)


def test_a_trial_record_reads_back_as_written() -> None:
    old = {  # before trials recorded their times
        "schema_version": 1,
        "trial_id": "trial_1",
        "variant_id": "v",
        "task_id": "t",
        "replication": 1,
        "seed": 5,
        "outcome": "success",
        "metrics": {"n": 1, "ok": True, "rate": 0.5, "none": None},
        "result": {"any": ["json", 1]},
        "error": None,
        "exit_code": 0,
        "duration_ms": 3.5,
        "attempt": 1,
        "event_counts": {},
        "objective": {"name": "loss", "value": 0.1, "direction": "minimize"},
    }
    rec = TrialRecord.model_validate_json(json.dumps(old))
    assert rec.started_at is None and rec.objective is not None and rec.objective.direction == "minimize"
    assert rec.metrics == {"n": 1, "ok": True, "rate": 0.5, "none": None}
    assert type(rec.metrics["n"]) is int and type(rec.metrics["ok"]) is bool
    assert json.loads(rec.model_dump_json(exclude_unset=True)) == old
    assert rec.error_text() is None
    assert TrialRecord.model_validate({**old, "error": {"message": "boom"}}).error_text() == "boom"
