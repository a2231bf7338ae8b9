"""The seed's names, as its README uses them: `./lab …` in a project (written by `opslab lab init`), the
`lab` command, knobs validated against a manifest given by name, and usage errors under --json that are
still one JSON envelope."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURES, needs_sandbox
from tests.e2e.conftest import OPSLAB, clean_env, run_cli

LAB = str(Path(OPSLAB).with_name("lab"))


def envelope(argv: list[str], cwd: Path) -> tuple[int, dict[str, Any]]:
    r = subprocess.run(
        argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300, check=False
    )
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line of JSON: {r.stdout!r} {r.stderr[-500:]}"
    return r.returncode, json.loads(lines[0])


def project(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(FIXTURES / "lab" / "proj", dest)
    path = dest / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(path.read_text())
    exp["variants"]["treatments"] = []
    path.write_text(yaml.safe_dump(exp))
    return dest


def test_init_writes_an_executable_lab_that_runs_opslab_lab(tmp_path: Path) -> None:
    assert run_cli("lab", "init", env=clean_env(), cwd=tmp_path).returncode == 0
    launcher = tmp_path / "lab"
    assert os.access(launcher, os.X_OK)
    proj = project(tmp_path)
    shutil.copy(launcher, proj / "lab")
    code, out = envelope(["./lab", "describe", ".lab/experiment.yaml", "--json"], proj)
    assert code == 0 and out["command"] == "describe" and out["summary"]["total_trials"] == 3
    code, out = envelope(["./lab", "run", ".lab/experiment.yaml", "--json"], proj)
    assert out["command"] == "run" and out["run"]["total_trials"] == 3


@needs_sandbox
def test_describe_right_after_init_answers_with_what_is_missing(tmp_path: Path) -> None:
    assert run_cli("lab", "init", env=clean_env(), cwd=tmp_path).returncode == 0
    code, out = envelope(["./lab", "describe", ".lab/experiment.yaml", "--json"], tmp_path)
    s = out["summary"]
    assert code == 0 and out["ok"] is True and s["total_trials"] == 0
    assert s["dataset_exists"] is False and "no such file" in s["dataset_error"]
    assert s["harness_script_exists"] is False
    code, out = envelope(["./lab", "run", ".lab/experiment.yaml", "--json"], tmp_path)
    assert code == 2 and out["error"]["details"]["errors"][0]["field"] == "dataset.path"


def test_init_keeps_a_lab_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "lab").write_text("#!/bin/sh\necho mine\n")
    code, out = envelope([OPSLAB, "lab", "init", "--json"], tmp_path)
    assert code == 0 and out["launcher"] is None
    assert (tmp_path / "lab").read_text() == "#!/bin/sh\necho mine\n"
    code, out = envelope([OPSLAB, "lab", "init", "--force", "--json"], tmp_path)
    assert code == 0 and out["launcher"] == "./lab" and "opslab lab" in (tmp_path / "lab").read_text()


def test_the_lab_command_is_opslab_lab(tmp_path: Path) -> None:
    proj = project(tmp_path)
    code, out = envelope([LAB, "describe", ".lab/experiment.yaml", "--json"], proj)
    assert code == 0 and out["summary"]["total_trials"] == 3


@pytest.mark.parametrize(
    ("argv", "command", "field"),
    [
        (["run", "--bogus", "x"], "run", "--bogus"),
        (["describe"], "describe", "EXPERIMENT"),
        (["pause"], "pause", "--run-dir"),
        (["run", ".lab/experiment.yaml", "--concurrency", "many"], "run", "--concurrency"),
        (["no-such-command"], "lab", "command line"),
    ],
)
@pytest.mark.parametrize("program", ["opslab", "lab"])
def test_a_usage_error_under_json_is_an_envelope(
    tmp_path: Path, argv: list[str], command: str, field: str, program: str
) -> None:
    prefix = [OPSLAB, "lab"] if program == "opslab" else [LAB]
    code, out = envelope([*prefix, *argv, "--json"], tmp_path)
    assert code == 2 and out["ok"] is False and out["command"] == command
    assert out["error"]["code"] == "invalid_input"
    assert out["error"]["details"]["errors"][0]["field"] == field


def test_knobs_validate_takes_the_manifest_by_name(tmp_path: Path) -> None:
    proj = project(tmp_path)
    knobs = proj / ".lab" / "knobs"
    knobs.mkdir()
    manifest = knobs / "custom.json"
    manifest.write_text(
        json.dumps(
            {
                "knobs": [
                    {"id": "design.replications", "json_pointer": "/design/replications", "type": "integer"}
                    | {"minimum": 1, "maximum": 5, "role": "core", "scientific_role": "control"}
                ]
            }
        )
    )
    overrides = knobs / "overrides.json"
    overrides.write_text(
        json.dumps({"manifest_path": ".lab/knobs/missing.json", "values": {"design.replications": 2}})
    )
    argv = [
        OPSLAB,
        "lab",
        "knobs-validate",
        "--manifest",
        str(manifest),
        "--overrides",
        str(overrides),
        "--json",
    ]
    code, out = envelope(argv, proj)
    assert code == 0 and out["manifest_path"] == str(manifest) and out["knobs"] == ["design.replications"]
    overrides.write_text(json.dumps({"values": {"design.replications": 99}}))
    code, out = envelope(argv, proj)
    assert code == 2 and "maximum" in out["error"]["message"]
    code, out = envelope([*argv[:3], "--manifest", str(knobs / "nope.json"), *argv[5:]], proj)
    assert code == 2 and out["error"]["details"]["errors"][0]["field"] == "--manifest"
