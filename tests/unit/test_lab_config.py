"""Experiment validation, pathing, the plan and knobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslab.errors import InvalidInput
from opslab.lab import apply_overrides, expand_trials, project_root_of, resolve
from opslab.lab.config import SKELETON, read_yaml
from opslab.lab.plan import trial_ids
from tests.conftest import FIXTURES


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(FIXTURES / "lab" / "proj", dest)
    return dest


def write(proj: Path, mutate: Any) -> Path:
    path = proj / ".lab" / "experiment.yaml"
    data = yaml.safe_load(path.read_text())
    mutate(data)
    path.write_text(yaml.safe_dump(data))
    return path


def test_pathing_follows_the_seed(proj: Path) -> None:
    r = resolve(proj / ".lab" / "experiment.yaml")
    assert r.project_root == proj.resolve() and r.dataset_path == (proj / "data" / "tasks.jsonl").resolve()
    assert project_root_of(proj / "elsewhere.yaml") == proj.resolve()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["design"].update(replications=0), "design.replications"),
        (lambda d: d["runtime"]["network"].update(mode="sideways"), "runtime.network.mode"),
        (lambda d: d["runtime"]["harness"].update(command=[]), "runtime.harness.command"),
        (lambda d: d.pop("variants"), "variants"),
        (lambda d: d["experiment"].update(id="has space"), "experiment.id"),
        (lambda d: d["experiment"].update(workload_type="trainerz"), "experiment.workload_type"),
        (lambda d: d["dataset"].update(path="../data/missing.jsonl"), "dataset.path"),
        (lambda d: d.update(surprise=1), "surprise"),
        (
            lambda d: d.setdefault("analysis", {}).update(metric_kinds={"x": "share"}),
            "analysis.metric_kinds.x",
        ),
        (
            lambda d: d.setdefault("analysis", {}).update(metric_kinds={"success": "mean"}),
            "analysis.metric_kinds",
        ),
    ],
)
def test_validation_names_the_field(proj: Path, mutate: Any, field: str) -> None:
    path = write(proj, mutate)
    with pytest.raises(InvalidInput) as info:
        resolve(path)
    fields = {e["field"] for e in info.value.details.get("errors", [])}
    assert field in fields or field in info.value.message


def test_duplicate_variant_ids_and_bad_tasks(proj: Path) -> None:
    path = write(proj, lambda d: d["variants"]["treatments"].append({"id": "normal", "bindings": {}}))
    with pytest.raises(InvalidInput, match="unique"):
        resolve(path)
    path = write(proj, lambda d: d["variants"]["treatments"].pop())
    (proj / "data" / "tasks.jsonl").write_text('{"task_id": "a"}\n{"no_id": 1}\n')
    with pytest.raises(InvalidInput, match="line 2"):
        resolve(path)


def test_plan_is_deterministic_with_derived_seeds(proj: Path) -> None:
    path = write(proj, lambda d: d["design"].update(replications=2))
    trials = expand_trials(resolve(path))
    assert len(trials) == 7 * 3 * 2
    assert [t.trial_id for t in trials[:3]] == ["trial_1", "trial_2", "trial_3"]
    assert (trials[0].variant_id, trials[0].task_id, trials[0].replication) == ("normal", "t1", 1)
    assert (trials[1].variant_id, trials[1].task_id, trials[1].replication) == ("normal", "t1", 2)
    assert trials == expand_trials(resolve(path))
    assert trial_ids(resolve(path)) == [t.trial_id for t in trials]  # the ids alone, unplanned
    assert len({t.seed for t in trials}) == len(trials)
    reseeded = expand_trials(resolve(write(proj, lambda d: d["design"].update(random_seed=99))))
    assert [t.seed for t in reseeded] != [t.seed for t in trials]


def test_knob_overrides(proj: Path) -> None:
    knobs = proj / ".lab" / "knobs"
    knobs.mkdir()
    (knobs / "manifest.json").write_text(
        json.dumps(
            {
                "knobs": [
                    {
                        "id": "design.replications",
                        "json_pointer": "/design/replications",
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 5,
                        "role": "core",
                        "scientific_role": "control",
                    }
                ]
            }
        )
    )
    overrides = knobs / "overrides.json"
    overrides.write_text(
        json.dumps({"manifest_path": ".lab/knobs/manifest.json", "values": {"design.replications": 3}})
    )
    data, applied = apply_overrides(read_yaml(proj / ".lab" / "experiment.yaml"), overrides)
    assert data["design"]["replications"] == 3 and applied == {"design.replications": 3}
    for bad, message in (
        ({"design.replications": 9}, "maximum"),
        ({"design.replications": "2"}, "integer"),
        ({"nope": 1}, "not declared"),
    ):
        overrides.write_text(json.dumps({"manifest_path": ".lab/knobs/manifest.json", "values": bad}))
        with pytest.raises(InvalidInput, match=message):
            apply_overrides(read_yaml(proj / ".lab" / "experiment.yaml"), overrides)


def test_skeleton_marks_required_fields_and_parses_once_filled(tmp_path: Path) -> None:
    assert SKELETON.count("REQUIRED") >= 6
    data = yaml.safe_load(SKELETON)
    assert data["design"]["random_seed"] == 42 and data["runtime"]["network"]["mode"] == "none"
