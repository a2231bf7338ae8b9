"""Property tests (hypothesis) for what a lab user feeds the runner: experiment.yaml, knob manifests and
overrides, and a harness's trial_output.json. Whatever arrives, the answer is a value or an
``InvalidInput`` naming a field (the CLI's exit 2) — never another exception; an output the protocol
accepts always becomes a trial record that reads back."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opslab.errors import InvalidInput
from opslab.lab import TrialRecord, apply_overrides, read_yaml, resolve
from opslab.lab.harness import output_problem
from opslab.lab.records import TRAINER_FIELDS, Objective
from tests.conftest import FIXTURES, examples
from tests.unit.strategies import json_values

SETTINGS = settings(max_examples=examples(200), deadline=None, suppress_health_check=list(HealthCheck))
PROJECT = FIXTURES / "lab" / "proj"
BASE: dict[str, Any] = yaml.safe_load((PROJECT / ".lab" / "experiment.yaml").read_text())

# Paths into the experiment: every key of the fixture, at any depth, plus keys it does not have.
_PATHS: list[tuple[str, ...]] = []


def _walk(node: Any, path: tuple[str, ...]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _PATHS.append((*path, k))
            _walk(v, (*path, k))


_walk(BASE, ())


def _named(exc: InvalidInput) -> bool:
    errors = exc.details.get("errors")
    if errors:
        return all(e.get("field") for e in errors)
    return bool(exc.details.get("field"))


@st.composite
def mutated_experiments(draw: st.DrawFn) -> Any:
    """The fixture's experiment with a few values replaced, removed or added at random places."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_PATHS))
        parent: Any = doc
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            parent.pop(path[-1], None)
        else:
            parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return doc


@SETTINGS
@given(mutated_experiments() | json_values)
def test_an_experiment_resolves_or_names_its_field(tmp_path_factory: Any, data: Any) -> None:
    exp = PROJECT / ".lab" / "experiment.yaml"
    try:
        resolved = resolve(exp, data)
    except InvalidInput as exc:
        assert _named(exc), exc.details
        return
    assert resolved.config.experiment.id and resolved.tasks is not None


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_experiment_file_reads_or_is_refused(tmp_path_factory: Any, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("exp") / "experiment.yaml"
    path.write_bytes(raw)
    try:
        data = read_yaml(path)
        resolve(path, data)
    except InvalidInput as exc:
        assert _named(exc), exc.details


knobs = st.fixed_dictionaries(
    {
        "id": st.text(max_size=12) | st.integers(),
        "json_pointer": st.sampled_from(["/design/replications", "/design/random_seed", "/nope/x", "", "x"])
        | st.text(max_size=12),
        "type": st.sampled_from(["integer", "number", "string", "boolean", "object"]) | json_values,
    },
    optional={
        "minimum": json_values,
        "maximum": json_values,
        "role": st.sampled_from(["core", "harness", "benchmark", "infra", "chief"]),
        "scientific_role": st.sampled_from(["treatment", "control", "confound", "invariant", "x"]),
    },
)


@SETTINGS
@given(
    manifest=st.fixed_dictionaries({"knobs": st.lists(knobs, max_size=3)}) | json_values,
    values=st.dictionaries(st.text(max_size=12), json_values, max_size=3) | json_values,
)
def test_knob_overrides_apply_or_name_their_field(tmp_path_factory: Any, manifest: Any, values: Any) -> None:
    root = tmp_path_factory.mktemp("knobs")
    (root / ".lab" / "knobs").mkdir(parents=True)
    (root / ".lab" / "knobs" / "manifest.json").write_text(json.dumps(manifest))
    overrides = root / ".lab" / "knobs" / "overrides.json"
    overrides.write_text(json.dumps({"manifest_path": ".lab/knobs/manifest.json", "values": values}))
    try:
        data, applied = apply_overrides(copy.deepcopy(BASE), overrides)
    except InvalidInput as exc:
        assert _named(exc), exc.details
        return
    assert applied == values
    try:  # what the knobs allowed, the experiment's own validation then judges
        resolve(PROJECT / ".lab" / "experiment.yaml", data)
    except InvalidInput as exc:
        assert _named(exc), exc.details


outputs = st.fixed_dictionaries(
    {"outcome": st.sampled_from(["success", "failure", "error", "skipped"]) | json_values},
    optional={
        "metrics": st.dictionaries(st.text(max_size=8), json_values, max_size=3) | json_values,
        "result": json_values,
        "error": json_values,
        "objective": st.fixed_dictionaries({"name": json_values, "value": json_values}) | json_values,
        "train_loss": json_values,
        "val_acc": json_values,
        "wall_time_s": json_values,
        "checkpoints": json_values,
    },
)


@SETTINGS
@given(outputs | json_values, st.booleans())
def test_an_output_the_protocol_accepts_becomes_a_record_that_reads_back(output: Any, trainer: bool) -> None:
    problem = output_problem(output, trainer=trainer)
    if problem is not None:
        assert isinstance(problem, str) and ":" in problem
        return
    # Built the way the runner builds it (constructed: the schema already checked the output), written
    # as the runner writes it, read back validated as the analysis reads every trial record.
    trainer_fields = {k: output[k] for k in TRAINER_FIELDS if k in output}
    if isinstance(trainer_fields.get("objective"), dict):
        trainer_fields["objective"] = Objective.model_construct(**trainer_fields["objective"])
    record = TrialRecord.model_construct(
        {"trial_id", "variant_id", "task_id", "replication", "seed", "outcome", "metrics", "result", "error"}
        | set(trainer_fields),
        trial_id="trial_1",
        variant_id="v",
        task_id="t",
        replication=1,
        seed=1,
        outcome=output["outcome"],
        metrics=output.get("metrics") or {},
        result=output.get("result"),
        error=output.get("error"),
        **trainer_fields,
    )
    TrialRecord.model_validate_json(record.model_dump_json(exclude_unset=True, warnings=False))
