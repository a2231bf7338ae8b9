"""Labelled runs in every format `opslab rca train` takes: who spoke, which step, counted from 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opslab.errors import InvalidInput
from opslab.rca.labels import carried_labels, load_labels, run_key
from opslab.rca.transcript import read_transcript
from opslab.telemetry import import_runs

HANDS = {
    "history": [
        {"content": "How many rows?", "role": "human"},
        {"content": "Plan: ask the coder.", "role": "Orchestrator (thought)"},
        {"content": "Please count the rows.", "role": "Orchestrator (-> Coder)"},
        {"content": "There are 12.", "role": "Coder"},
    ],
    "mistake_agent": "Coder",
    "mistake_step": "3",
    "ground_truth": "14",
}


def test_who_and_when_files_become_runs_with_their_labels_one_based(tmp_path: Path) -> None:
    (tmp_path / "7.json").write_text(json.dumps(HANDS))
    named = {"history": [{"content": "x", "role": "assistant", "name": "Excel_Expert"}], "mistake_step": 0}
    (tmp_path / "8.json").write_text(json.dumps({**named, "mistake_agent": "Excel_Expert"}))
    runs = list(import_runs("who-and-when", tmp_path))
    assert [r.run_id for r in runs] == ["ww-7", "ww-8"] and all(r.status == "failure" for r in runs)
    assert runs[0].attributes["annotated"] == {"step": 4, "agent": "Coder"}
    assert runs[0].attributes["expected"] == {"outputs": ["14"]}
    assert runs[1].steps[0].agent == "Excel_Expert"  # the speaker's name, not its chat role
    tr = read_transcript(runs[0])
    assert [t.role for t in tr.turns] == ["user", "lead", "instruction", "worker"]
    labels = carried_labels(runs)
    assert labels["7"].step_number == 4 and labels["8"].step_number == 1 and run_key(runs[0]) == "7"


def test_label_files_in_each_accepted_shape(tmp_path: Path) -> None:
    shapes: dict[str, Any] = {
        "agentrx": [
            {
                "trajectory_id": 5,
                "failures": [{"failure_id": 1, "step_number": 3, "failed_agent": "Assistant"}],
                "root_cause": {"failure_id": 1},
            }
        ],
        "plain": [{"run_id": "5", "step": 3, "agent": "Assistant"}],
        "mapping": {"5": {"step_number": "3", "failed_agent": "Assistant"}},
    }
    for name, data in shapes.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        got = load_labels(path)["5"]
        assert (got.step_number, got.agent) == (3, "Assistant"), name


@pytest.mark.parametrize(
    "data",
    [{"x": 1}, [{"run_id": "a", "step": 0, "agent": "A"}], [{"run_id": "a", "agent": "A"}], "text", [7]],
)
def test_a_bad_label_file_names_the_record(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInput) as err:
        load_labels(path)
    assert err.value.details["errors"][0]["field"].startswith("--ground-truth")


def test_opslab_run_files_are_validated_like_ingestion(tmp_path: Path, run_001: dict[str, Any]) -> None:
    good = tmp_path / "runs.json"
    good.write_text(json.dumps([run_001, {**run_001, "run_id": "b"}]))
    assert [r.run_id for r in import_runs("opslab", good)] == ["run-001-sufficient", "b"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(run_001) + "\n" + json.dumps({"run_id": "x"}) + "\n")
    with pytest.raises(InvalidInput) as err:
        list(import_runs("opslab", bad))
    assert "bad.jsonl" in str(err.value)
    (tmp_path / "notes.json").write_text("{no")
    with pytest.raises(InvalidInput):
        list(import_runs("who-and-when", tmp_path / "notes.json"))
