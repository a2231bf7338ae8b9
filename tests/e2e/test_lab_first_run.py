"""What a first real experiment trips over, through the CLI: a wrong harness path, a run where every
trial errors, knobs into arrays, manifest_path resolution."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.e2e.test_lab_cli import lab, project


def _edit(proj: Path, change: dict[str, object]) -> None:
    path = proj / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        node = exp
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(exp))


def test_a_harness_that_cannot_start_is_refused_before_the_first_trial(tmp_path: Path) -> None:
    proj = project(tmp_path)
    _edit(proj, {"runtime.harness.command": ["python3", "./src/harness/missing.py"]})
    code, out = lab("run", ".lab/experiment.yaml", cwd=proj)
    assert code == 2 and out["ok"] is False
    assert out["error"]["details"]["errors"][0]["field"] == "runtime.harness.command"
    assert "missing.py does not exist" in out["error"]["message"]
    assert not (proj / ".lab" / "runs").exists()
    _edit(proj, {"runtime.harness.command": ["no-such-program-xyz", "./harness.py"]})
    code, out = lab("run", ".lab/experiment.yaml", cwd=proj)
    assert code == 2 and "not on PATH" in out["error"]["message"]


def test_a_run_in_which_every_trial_errored_exits_non_zero(tmp_path: Path) -> None:
    proj = project(tmp_path)
    _edit(proj, {"variants.baseline.bindings": {"mode": "crash"}})
    code, out = lab("run", ".lab/experiment.yaml", cwd=proj)
    assert code != 0 and out["ok"] is False and out["error"]["code"] == "operation_failed"
    assert "every trial errored" in out["error"]["message"]
    assert out["error"]["details"]["run"]["outcomes"] == {"error": 3}


def test_knobs_index_arrays_and_manifest_path_resolves_from_the_project_root(tmp_path: Path) -> None:
    proj = project(tmp_path)
    _edit(proj, {"variants.treatments": [{"id": "odd", "bindings": {"mode": "normal"}}]})
    knobs = proj / ".lab" / "knobs"
    knobs.mkdir()
    manifest = {
        "knobs": [
            {
                "id": "treatment.mode",
                "json_pointer": "/variants/treatments/0/bindings/mode",
                "type": "string",
                "role": "harness",
                "scientific_role": "treatment",
            }
        ]
    }
    (knobs / "manifest.json").write_text(json.dumps(manifest))
    # The overrides file lives outside .lab/; its manifest_path is still relative to the project root.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    overrides = elsewhere / "crash.json"
    overrides.write_text(
        json.dumps({"manifest_path": ".lab/knobs/manifest.json", "values": {"treatment.mode": "crash"}})
    )
    code, out = lab("describe", ".lab/experiment.yaml", "--overrides", str(overrides), cwd=proj)
    assert code == 0, out
    assert out["summary"]["overrides"] == {"treatment.mode": "crash"}
    code, out = lab("run", ".lab/experiment.yaml", "--overrides", str(overrides), cwd=proj)
    assert code == 0 and out["run"]["outcomes"] == {"success": 3, "error": 3}, out
    frozen = json.loads(next((proj / ".lab" / "runs").glob("*/resolved_experiment.json")).read_text())
    assert frozen["variants"]["treatments"][0]["bindings"]["mode"] == "crash"
    # Past the end, or not an index: refused naming the override.
    manifest["knobs"][0]["json_pointer"] = "/variants/treatments/3/bindings/mode"
    (knobs / "manifest.json").write_text(json.dumps(manifest))
    code, out = lab("describe", ".lab/experiment.yaml", "--overrides", str(overrides), cwd=proj)
    assert code == 2 and "past the end" in out["error"]["message"]
    # A manifest_path that does not exist says where relative paths resolve.
    overrides.write_text(json.dumps({"manifest_path": "nope/manifest.json", "values": {}}))
    code, out = lab("describe", ".lab/experiment.yaml", "--overrides", str(overrides), cwd=proj)
    assert code == 2 and "relative paths resolve against the project root" in out["error"]["message"]
