"""The seed's run modes as a user meets them: `run` is local whatever image is configured (`--container`
uses it), `run-dev` and `run-experiment` refuse without an image, `describe --container` checks a
configured image as a container run would (plain `describe` reports what it lacks), and `clean --init`
removes what `init` and `knobs-init` wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslab import proc
from tests.conftest import FIXTURES
from tests.e2e.conftest import clean_env, run_cli

IMAGE = "python:3.12-slim"  # an OCI image: needs podman or docker able to run containers


def lab(*args: str, cwd: Path) -> tuple[int, dict[str, Any]]:
    r = run_cli("lab", *args, "--json", env=clean_env(), cwd=cwd, timeout=300)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line of JSON: {r.stdout!r} {r.stderr[-500:]}"
    return r.returncode, json.loads(lines[0])


def project(tmp_path: Path, *, image: str | None, network: str = "full") -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(FIXTURES / "lab" / "proj", dest)
    path = dest / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(path.read_text())
    exp["variants"]["treatments"] = []
    exp["runtime"]["sandbox"] = {"image": image}
    exp["runtime"]["network"]["mode"] = network
    path.write_text(yaml.safe_dump(exp))
    return dest


def an_engine_runs_containers() -> bool:
    return any(
        shutil.which(engine) and proc.run([engine, "info"], timeout_s=20).ok
        for engine in ("podman", "docker")
    )


def test_run_is_local_with_an_image_configured_and_container_runs_need_one(tmp_path: Path) -> None:
    if an_engine_runs_containers():
        pytest.skip("an OCI engine runs containers here: the image would be usable")
    proj = project(tmp_path, image=IMAGE)
    code, out = lab("run", ".lab/experiment.yaml", cwd=proj)
    assert code == 0 and out["run"]["status"] == "completed", out
    manifest = json.loads((Path(out["run"]["run_dir"]) / "manifest.json").read_text())
    assert manifest["isolation"]["sandbox"] == "local" and manifest["isolation"]["container_image"] is None
    code, out = lab("run", ".lab/experiment.yaml", "--container", cwd=proj)
    assert code == 6 and out["error"]["code"] == "unavailable"
    assert out["error"]["details"]["field"] == "runtime.sandbox.image"


@pytest.mark.parametrize("command", ["run-dev", "run-experiment"])
def test_run_dev_and_run_experiment_refuse_without_an_image(tmp_path: Path, command: str) -> None:
    proj = project(tmp_path, image=None, network="none")
    code, out = lab(command, ".lab/experiment.yaml", cwd=proj)
    assert code == 2 and out["ok"] is False and out["command"] == command
    assert out["error"]["code"] == "invalid_input"
    assert [e["field"] for e in out["error"]["details"]["errors"]] == ["runtime.sandbox.image"]
    assert "needs a container" in out["error"]["message"]
    assert not (proj / ".lab" / "runs").exists() or not any((proj / ".lab" / "runs").iterdir())
    r = run_cli("lab", command, ".lab/experiment.yaml", env=clean_env(), cwd=proj, timeout=120)
    assert r.returncode == 2 and "runtime.sandbox.image" in r.stderr and r.stdout.strip() == ""


def test_describe_checks_a_configured_image_as_a_container_run_would(tmp_path: Path) -> None:
    if an_engine_runs_containers():
        pytest.skip("an OCI engine runs containers here: the image would be usable")
    proj = project(tmp_path, image=IMAGE)
    code, out = lab("describe", ".lab/experiment.yaml", "--container", cwd=proj)
    assert code == 6 and out["ok"] is False and out["error"]["code"] == "unavailable", out
    assert out["error"]["details"]["field"] == "runtime.sandbox.image"
    # `run` runs locally whatever image is configured: describing it says what the container runs lack.
    code, out = lab("describe", ".lab/experiment.yaml", cwd=proj)
    assert code == 0 and out["summary"]["sandbox_mode"] == "local" and out["summary"]["total_trials"] > 0
    assert "run --container" in out["summary"]["container_error"]
    local = project(tmp_path / "local", image=None)
    code, out = lab("describe", ".lab/experiment.yaml", cwd=local)
    assert code == 0 and out["summary"]["sandbox_mode"] == "local"
    assert out["summary"]["container_image"] is None and out["summary"]["container_error"] is None
    code, out = lab("describe", ".lab/experiment.yaml", "--container", cwd=local)
    assert code == 2 and out["error"]["details"]["errors"][0]["field"] == "runtime.sandbox.image"


def test_clean_init_removes_what_init_and_knobs_init_wrote(tmp_path: Path) -> None:
    assert lab("init", cwd=tmp_path)[0] == 0
    assert lab("knobs-init", cwd=tmp_path)[0] == 0
    (tmp_path / ".lab" / "runs" / "run_x").mkdir(parents=True)
    (tmp_path / ".lab" / "notes.md").write_text("mine\n")
    code, out = lab("clean", "--init", cwd=tmp_path)
    assert code == 0 and set(out["removed"]) == {".lab/experiment.yaml", ".lab/knobs", "./lab"}
    assert not (tmp_path / "lab").exists() and not (tmp_path / ".lab" / "knobs").exists()
    assert not (tmp_path / ".lab" / "experiment.yaml").exists()
    assert (tmp_path / ".lab" / "runs" / "run_x").is_dir() and (tmp_path / ".lab" / "notes.md").is_file()
    code, out = lab("clean", "--init", cwd=tmp_path)
    assert code == 0 and out["removed"] == []


def test_clean_init_keeps_a_lab_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "lab").write_text("#!/bin/sh\necho mine\n")
    assert lab("init", cwd=tmp_path)[0] == 0
    code, out = lab("clean", "--init", "--runs", cwd=tmp_path)
    assert code == 0 and out["removed"] == [".lab/experiment.yaml", ".lab"]  # .lab/ held nothing else
    assert (tmp_path / "lab").read_text() == "#!/bin/sh\necho mine\n"
    assert not (tmp_path / ".lab").exists()
