"""The Python SDK against the real CLI: an experiment built in code, run by `LabClient`, its comparison
and trial records read back typed; failed commands as `LabRunnerError`s that say what ran and why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opslab.config import Settings
from opslab.errors import Conflict, InvalidInput
from opslab.lab import ExperimentBuilder, LabClient, LabRunnerError, TrialRecord
from opslab.lab.sdk import RunResult
from tests.conftest import needs_sandbox
from tests.e2e.conftest import OPSLAB

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lab-python"

pytestmark = needs_sandbox  # the SDK's runs use the default network: none


def scenario() -> ExperimentBuilder:
    """The scenario both SDKs drive: 2 variants, 4 tasks, 2 replications (16 trials)."""
    return (
        ExperimentBuilder.create("sdk_ab", "SDK A/B")
        .description("careful vs hasty arithmetic, from the Python SDK")
        .dataset_jsonl("./data/tasks.jsonl", suite_id="arithmetic", split_id="dev", limit=4)
        .harness_cli(["python3", "./harness.py"], integration_level="cli_basic")
        .replications(2)
        .random_seed(7)
        .baseline("careful", {"strategy": "careful"})
        .add_variant("hasty", {"strategy": "hasty"})
        .primary_metrics(["success", "accuracy"])
        .secondary_metrics(["latency_ms"])
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proj = tmp_path_factory.mktemp("sdk") / "proj"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns(".lab"))
    return proj


@pytest.fixture(scope="module")
def client(project: Path) -> LabClient:
    return LabClient(runner_bin=OPSLAB, cwd=project, timeout=300)


@pytest.fixture(scope="module")
def finished(project: Path, client: LabClient) -> RunResult:
    scenario().write(project / ".lab" / "sdk.yaml")
    return client.run(experiment=".lab/sdk.yaml", concurrency=2)


def test_describe_plans_the_built_experiment(project: Path, client: LabClient) -> None:
    scenario().write(project / ".lab" / "described.yaml")
    summary = client.describe(experiment=".lab/described.yaml").summary
    assert summary.total_trials == 16 and summary.tasks == 4 and summary.replications == 2
    assert summary.variants == ["careful", "hasty"] and summary.harness_script_exists
    assert summary.project_root == project and summary.dataset_path == project / "data" / "tasks.jsonl"
    assert summary.isolation.network_mode == "none" and summary.first_trials[0].trial_id == "trial_1"


def test_run_returns_the_run_and_its_comparison(finished: RunResult) -> None:
    run = finished.run
    assert finished.command == "run" and run.status == "completed" and run.total_trials == 16
    assert sum(run.outcomes.values()) == 16 and run.run_dir.is_dir()
    comparison = finished.comparison
    assert comparison is not None and comparison.run_id == run.run_id and comparison.baseline == "careful"
    careful, hasty = comparison.variants["careful"], comparison.variants["hasty"]
    assert careful.n == hasty.n == 8 and careful.success_rate == 1.0 and careful.errors == 0
    (contrast,) = comparison.comparisons
    assert (contrast.baseline, contrast.treatment) == ("careful", "hasty")
    assert set(contrast.metrics) >= {"success", "accuracy"}
    assert contrast.metrics["success"].n_tasks == 4


def test_trial_records_come_back_typed(finished: RunResult) -> None:
    trials = finished.trials()
    assert len(trials) == 16 and all(isinstance(t, TrialRecord) for t in trials)
    assert [t.trial_id for t in trials[:3]] == ["trial_1", "trial_2", "trial_3"]
    assert {t.variant_id for t in trials} == {"careful", "hasty"}
    assert all(t.outcome == "success" for t in trials if t.variant_id == "careful")


def test_replay_publish_and_schema_checks_on_the_run(finished: RunResult, client: LabClient) -> None:
    run_dir = finished.run.run_dir
    replay = client.replay(run_dir=run_dir, trial_id="trial_1", ignore=["metrics.latency_ms"]).replay
    assert (
        replay.matches and replay.ignored == ["metrics.latency_ms"] and replay.original.outcome == "success"
    )
    bundle = client.publish(run_dir=run_dir, output=run_dir.parent / "bundle.tar.gz").bundle
    assert bundle.path == run_dir.parent / "bundle.tar.gz" and bundle.files > 16 and len(bundle.sha256) == 64
    report = client.validate_schema(
        file=run_dir / "trials" / "trial_1" / "trial_input.json", schema="trial_input"
    )
    assert report.report.valid and report.report.schema_name == "trial_input"


def test_refusals_carry_the_clis_code_exit_code_and_command(finished: RunResult, client: LabClient) -> None:
    with pytest.raises(LabRunnerError) as paused:
        client.pause(run_dir=finished.run.run_dir, reason="too late")
    e = paused.value
    assert e.code == "conflict" and e.exit_code == 5 and e.details["status"] == "completed"
    assert e.command == [
        OPSLAB,
        "lab",
        "pause",
        "--run-dir",
        str(finished.run.run_dir),
        "--reason",
        "too late",
        "--json",
    ]
    assert isinstance(e.to_opslab_error(), Conflict)
    with pytest.raises(LabRunnerError) as forked:
        client.fork(
            run_dir=finished.run.run_dir, from_trial="trial_1", at="last", bindings={"strategy": "careful"}
        )
    assert forked.value.code == "invalid_input" and forked.value.details["errors"][0]["field"] == "--at"
    assert "--set" in forked.value.command and 'strategy="careful"' in forked.value.command


def test_knobs_are_validated_as_the_seed_calls_it_manifest_and_overrides(
    project: Path, client: LabClient, finished: RunResult
) -> None:
    knobs = project / ".lab" / "knobs"
    knobs.mkdir(exist_ok=True)
    manifest, overrides = knobs / "custom-manifest.json", knobs / "sdk-overrides.json"
    knob = {"id": "design.replications", "json_pointer": "/design/replications", "type": "integer"}
    manifest.write_text(json.dumps({"knobs": [{**knob, "minimum": 1, "maximum": 5}]}))
    # manifest_path names another file: the manifest given by name is the one checked
    overrides.write_text(
        json.dumps({"manifest_path": "elsewhere.json", "values": {"design.replications": 2}})
    )
    ok = client.validate_knobs(manifest=manifest, overrides=overrides, experiment=".lab/sdk.yaml")
    assert ok.manifest_path == manifest and ok.knobs == ["design.replications"] and ok.pointers_checked
    overrides.write_text(json.dumps({"values": {"design.replications": 9}}))
    with pytest.raises(LabRunnerError) as refused:
        client.validate_knobs(manifest=manifest, overrides=overrides)
    assert refused.value.code == "invalid_input" and "maximum" in refused.value.message


def test_a_missing_experiment_is_a_lab_runner_error(project: Path, client: LabClient) -> None:
    with pytest.raises(LabRunnerError) as exc:
        client.describe(experiment=".lab/does-not-exist.yaml")
    e = exc.value
    assert e.code == "invalid_input" and e.exit_code == 2
    assert e.command == [OPSLAB, "lab", "describe", ".lab/does-not-exist.yaml", "--json"]
    assert e.details["errors"][0]["field"] == "EXPERIMENT" and "no such file" in e.message
    assert isinstance(e.to_opslab_error(), InvalidInput)


def test_a_runner_that_cannot_start_or_speaks_no_json(tmp_path: Path) -> None:
    with pytest.raises(LabRunnerError) as missing:
        LabClient(runner_bin=tmp_path / "no-such-opslab").describe()
    assert missing.value.code == "runner_not_found" and missing.value.exit_code is None
    broken = tmp_path / "broken-opslab"
    broken.write_text("#!/bin/sh\necho 'something went wrong' >&2\nexit 7\n")
    broken.chmod(0o755)
    with pytest.raises(LabRunnerError) as crashed:
        LabClient(runner_bin=broken, cwd=tmp_path).describe()
    e = crashed.value
    assert e.code == "command_failed" and e.exit_code == 7 and "something went wrong" in e.stderr
    assert e.command[0] == str(broken) and e.message.endswith("something went wrong")


def test_a_runner_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    slow = tmp_path / "slow-opslab"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(LabRunnerError) as exc:
        LabClient(runner_bin=slow, timeout=0.5).describe()
    assert exc.value.code == "runner_timeout" and exc.value.exit_code is None


def test_env_reaches_the_runner(tmp_path: Path) -> None:
    echo = tmp_path / "env-opslab"
    echo.write_text(
        '#!/bin/sh\nprintf \'{"ok": false, "error": {"code": "x", "message": "%s"}}\' "$SDK_PROBE"\nexit 1\n'
    )
    echo.chmod(0o755)
    with pytest.raises(LabRunnerError) as exc:
        LabClient(runner_bin=echo, env={"SDK_PROBE": "seen"}).describe()
    assert exc.value.message == "seen"


@pytest.mark.parametrize("variable", ["OPSLAB_RUNNER_BIN", "AGENTLAB_RUNNER_BIN"])
def test_the_runner_comes_from_the_environment(variable: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPSLAB_RUNNER_BIN", "AGENTLAB_RUNNER_BIN")}
    code = "from opslab.lab import LabClient; print(LabClient().runner_bin)"
    found = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, variable: "/opt/lab/bin/opslab"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert found.stdout.strip() == "/opt/lab/bin/opslab"
    default = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert default.stdout.strip() == OPSLAB  # the opslab beside this Python
    assert LabClient(settings=Settings(runner_bin="/x/opslab")).runner_bin == "/x/opslab"


def test_results_serialise_to_json(finished: RunResult) -> None:
    data = json.loads(finished.model_dump_json())
    assert data["run"]["run_id"] == finished.run.run_id and data["comparison"]["baseline"] == "careful"
