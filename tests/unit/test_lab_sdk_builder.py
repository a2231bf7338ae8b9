"""`ExperimentBuilder`: YAML the lab's own config model reads back, and bad input that names its field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opslab.errors import InvalidInput
from opslab.lab import ExperimentBuilder, ExperimentConfig, resolve
from opslab.lab.sdk.client import fork_sets, opt, repeated
from opslab.lab.sdk.errors import error_of


def seed_builder() -> ExperimentBuilder:
    """The seed's example, method for method."""
    return (
        ExperimentBuilder.create("prompt_ab", "Prompt A/B Test")
        .description("Compare prompt v1 vs v2 on coding tasks")
        .dataset_jsonl("./data/tasks.jsonl", suite_id="coding_tasks", split_id="dev", limit=50)
        .harness_cli(["node", "./src/harness/run-trial.js"], integration_level="cli_events")
        .sanitization_profile("hermetic_functional_v2")
        .replications(3)
        .random_seed(42)
        .baseline("control", {"model": "gpt-4o", "temperature": 0.0})
        .add_variant("treatment", {"model": "gpt-4o", "temperature": 0.7})
        .primary_metrics(["success", "accuracy"])
        .secondary_metrics(["latency_ms", "cost_usd"])
        .network_mode("allowlist_enforced", ["api.openai.com"])
    )


def test_the_seeds_example_round_trips_through_the_config_model() -> None:
    built = seed_builder().build()
    read_back = ExperimentConfig.model_validate(yaml.safe_load(seed_builder().to_yaml()))
    assert read_back == built
    assert built.experiment.id == "prompt_ab" and built.experiment.description.startswith("Compare")
    assert built.dataset.suite_id == "coding_tasks" and built.dataset.limit == 50
    assert built.runtime.harness.command == ["node", "./src/harness/run-trial.js"]
    assert built.runtime.harness.integration_level == "cli_events"
    assert built.design.replications == 3 and built.design.random_seed == 42
    assert [v.id for v in built.variants.all()] == ["control", "treatment"]
    assert built.variants.treatments[0].bindings == {"model": "gpt-4o", "temperature": 0.7}
    assert built.analysis.secondary_metrics == ["latency_ms", "cost_usd"]
    assert built.runtime.network.mode == "allowlist_enforced"
    assert built.runtime.network.allowed_hosts == ["api.openai.com"]


def test_defaults_are_the_config_models_own() -> None:
    built = (
        ExperimentBuilder.create("x", "X")
        .dataset_jsonl("t.jsonl")
        .harness_cli(["./run"])
        .baseline("a")
        .build()
    )
    assert built == ExperimentConfig.model_validate(
        {
            "experiment": {"id": "x", "name": "X"},
            "dataset": {"path": "../t.jsonl"},
            "runtime": {"harness": {"command": ["./run"]}},
            "variants": {"baseline": {"id": "a"}},
        }
    )
    assert built.runtime.network.mode == "none" and built.runtime.sandbox.image is None


def test_the_dataset_path_is_rewritten_for_the_folder_the_yaml_lands_in(tmp_path: Path) -> None:
    b = seed_builder()
    assert b.to_dict()["dataset"]["path"] == "../data/tasks.jsonl"
    assert b.to_dict(experiment_dir=".")["dataset"]["path"] == "data/tasks.jsonl"
    assert b.to_dict(experiment_dir="exps/ab")["dataset"]["path"] == "../../data/tasks.jsonl"
    absolute = str(tmp_path / "tasks.jsonl")
    assert b.dataset_jsonl(absolute).to_dict()["dataset"]["path"] == absolute


# In .lab/ the project root is its parent; anywhere else, the file's own folder (config.project_root_of).
@pytest.mark.parametrize("where", [".lab/sdk.yaml", "experiment.yaml"])
def test_a_written_experiment_resolves_its_dataset_from_the_project_root(tmp_path: Path, where: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tasks.jsonl").write_text(json.dumps({"task_id": "t1"}) + "\n")
    (tmp_path / "harness.py").write_text("")
    path = seed_builder().write(tmp_path / where)
    resolved = resolve(path)
    assert resolved.project_root == tmp_path
    assert resolved.dataset_path == tmp_path / "data" / "tasks.jsonl"
    assert [t["task_id"] for t in resolved.tasks] == ["t1"]


def fields_of(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [e["field"] for e in exc.value.details["errors"]]


def test_fewer_than_one_replication_names_design_replications() -> None:
    with pytest.raises(InvalidInput) as exc:
        seed_builder().replications(0).build()
    assert fields_of(exc) == ["design.replications"]
    assert exc.value.message.startswith("design.replications:")


def test_duplicate_variant_ids_name_the_variants() -> None:
    with pytest.raises(InvalidInput) as exc:
        seed_builder().add_variant("control", {"model": "other"}).to_yaml()
    assert fields_of(exc) == ["variants"] and "unique" in exc.value.message


def test_a_missing_baseline_dataset_or_harness_is_named() -> None:
    with pytest.raises(InvalidInput) as exc:
        ExperimentBuilder.create("x", "X").add_variant("b").build()
    assert fields_of(exc) == ["dataset.path", "runtime.harness.command", "variants.baseline"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.network_mode("sideways"), "runtime.network.mode"),  # type: ignore[arg-type]
        (lambda b: b.harness_cli([]), "runtime.harness.command"),
        (lambda b: b.dataset_jsonl("d.jsonl", limit=0), "dataset.limit"),
        (lambda b: b.add_variant("has space"), "variants.treatments[1].id"),
        (lambda b: b.env_allow(["NOT-A-NAME"]), "runtime.env_allow"),
        (lambda b: b.sanitization_profile("loose"), "design.sanitization_profile"),  # type: ignore[arg-type]
    ],
)
def test_each_bad_value_names_its_field(change: object, field: str) -> None:
    b = seed_builder()
    assert callable(change)
    change(b)
    with pytest.raises(InvalidInput) as exc:
        b.build()
    assert fields_of(exc) == [field]


def test_experiment_ids_follow_the_configs_pattern() -> None:
    with pytest.raises(InvalidInput) as exc:
        ExperimentBuilder.create("no spaces", "X").dataset_jsonl("t").harness_cli(["x"]).baseline("a").build()
    assert fields_of(exc) == ["experiment.id"]


def test_options_become_the_clis_flags() -> None:
    assert opt("--concurrency", None) == [] and opt("--concurrency", 2) == ["--concurrency", "2"]
    assert opt("--overrides", Path("o.json")) == ["--overrides", "o.json"]
    assert repeated("--ignore", ["a", "b"]) == ["--ignore", "a", "--ignore", "b"]
    # JSON values: a string that looks like a number stays a string on the other side.
    assert fork_sets({"model.t": 0.2, "name": "7", "on": True}) == [
        "--set",
        "model.t=0.2",
        "--set",
        'name="7"',
        "--set",
        "on=true",
    ]


def test_a_failed_command_is_read_from_its_envelope_or_its_stderr() -> None:
    envelope = {"ok": False, "error": {"code": "not_found", "message": "no run", "details": {"run": "r"}}}
    e = error_of(["opslab", "lab", "pause"], 4, json.dumps(envelope) + "\n", "warning\n")
    assert (e.code, e.message, e.details, e.exit_code, e.stderr) == (
        "not_found",
        "no run",
        {"run": "r"},
        4,
        "warning\n",
    )
    assert type(e.to_opslab_error()).__name__ == "NotFound"
    crash = error_of(["opslab", "lab", "run"], 1, "", "Traceback …\nRuntimeError: boom\n")
    assert crash.code == "command_failed" and crash.message.endswith("RuntimeError: boom")
    assert error_of(["x"], 0, "not json", "").code == "invalid_output"
