"""Reading lab runs back for the dashboard: what is listed, what an unfinished run shows, and that a key
never reaches outside the folders it was given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opslab.errors import NotFound
from opslab.lab import list_runs, read_run, read_trial, root_key


def _run(root: Path, run_id: str, *, created: str, analysed: bool = True) -> Path:
    d = root / run_id
    (d / "trials" / "trial_1" / "out").mkdir(parents=True)
    manifest = {
        "run_id": run_id,
        "experiment_id": "exp",
        "experiment_path": "/p/.lab/experiment.yaml",
        "project_root": "/p",
        "dataset_path": "/p/data/tasks.jsonl",
        "created_at": created,
        "status": "completed" if analysed else "running",
        "total_trials": 1,
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    record = {
        "trial_id": "trial_1",
        "variant_id": "base",
        "task_id": "t1",
        "replication": 1,
        "seed": 1,
        "outcome": "success",
        "metrics": {"accuracy": 1.0},
        "result": {"answer": 2},
        "duration_ms": 5.0,
        "started_at": created,
        "ended_at": created,
    }
    (d / "trials" / "trial_1" / "trial_output.json").write_text(json.dumps(record))
    (d / "trials" / "trial_1" / "trial_input.json").write_text(json.dumps({"task": {"a": 1}}))
    (d / "trials" / "trial_1" / "out" / "stderr.log").write_text("x" * 70_000 + "the end\n")
    (d / "trials" / "trial_1" / "out" / "harness_events.jsonl").write_text('{"type": "step"}\nnot json\n')
    if analysed:
        (d / "analysis" / "tables").mkdir(parents=True)
        (d / "analysis" / "comparison.json").write_text(
            json.dumps({"variants": {"base": {}}, "comparisons": []})
        )
        (d / "analysis" / "tables" / "trials.jsonl").write_text(json.dumps({"outcome": "success"}) + "\n")
    return d


def test_runs_are_listed_newest_first_and_an_unanalysed_run_still_shows(tmp_path: Path) -> None:
    _run(tmp_path, "run_a", created="2026-11-20T10:00:00+00:00")
    _run(tmp_path, "run_b", created="2026-11-21T10:00:00+00:00", analysed=False)
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    found = list_runs([tmp_path, tmp_path / "missing"])
    assert found.total == 2
    runs = found.runs
    assert [r.run_id for r in runs] == ["run_b", "run_a"]
    assert runs[1].outcomes == {"success": 1} and runs[1].variants == ["base"]
    assert runs[0].outcomes == {} and runs[0].key == f"{root_key(tmp_path)}/run_b"
    view = read_run([tmp_path, tmp_path / "missing"], root_key(tmp_path), "run_b")
    assert view.comparison is None and [t.task_id for t in view.tasks] == ["t1"]


def test_a_trial_shows_its_files_with_long_logs_cut_to_their_tail(tmp_path: Path) -> None:
    _run(tmp_path, "run_a", created="2026-11-20T10:00:00+00:00")
    trial = read_trial([tmp_path], root_key(tmp_path), "run_a", "trial_1")
    assert trial.record is not None and trial.record.outcome == "success"
    assert trial.trial_input == {"task": {"a": 1}}
    assert trial.events == [{"type": "step"}]
    assert trial.logs["stderr.log"].endswith("the end\n") and trial.logs["stderr.log"].startswith("… (")


@pytest.mark.parametrize(
    ("root", "run_id", "trial"),
    [("secret", "run_a", None), ("nope", "run_a", None), ("runs", "..", None), ("runs", "run_a", ".."),
     ("runs", "nope", None)],
)  # fmt: skip
def test_a_key_outside_the_folders_is_not_found(
    tmp_path: Path, root: str, run_id: str, trial: str | None
) -> None:
    _run(tmp_path / "runs", "run_a", created="2026-11-20T10:00:00+00:00")
    (tmp_path / "secret").mkdir()
    _run(tmp_path / "secret", "run_a", created="2026-11-20T10:00:00+00:00")  # a run, but not a listed folder
    key = root_key(tmp_path / root)
    with pytest.raises(NotFound):
        if trial is None:
            read_run([tmp_path / "runs"], key, run_id)
        else:
            read_trial([tmp_path / "runs"], key, run_id, trial)


def test_a_folder_keeps_its_key_whatever_else_is_listed(tmp_path: Path) -> None:
    _run(tmp_path / "b", "run_b", created="2026-11-20T10:00:00+00:00")
    (tmp_path / "a").mkdir()
    alone = list_runs([tmp_path / "b"]).runs[0].key
    assert list_runs([tmp_path / "a", tmp_path / "b"]).runs[0].key == alone
    assert read_run([tmp_path / "a", tmp_path / "b"], alone.split("/")[0], "run_b").listing.run_id == "run_b"
