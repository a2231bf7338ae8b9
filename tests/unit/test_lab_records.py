"""The lab's files as typed records: today's round-trip, older files still load, broken ones are named."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opslab.errors import InvalidInput, NotFound
from opslab.lab import Attestation, Manifest, TrialRecord
from opslab.lab.artifacts import canonical_digest, read_model, write_model
from opslab.lab.commit import WrittenRecords
from opslab.lab.config import ExperimentConfig
from opslab.lab.finish import records_digest
from opslab.lab.plan import Trial
from opslab.lab.record_json import trial_input_json, trial_record_json
from opslab.lab.records import (
    TRAINER_FIELDS,
    LabRunPredicate,
    Objective,
    ResourceDescriptor,
    TrialInput,
    VariantRef,
    platform_name,
)

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


def test_an_attestation_is_an_in_toto_statement_that_reads_back(tmp_path: Path) -> None:
    predicate = LabRunPredicate(
        run_id="run_1",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        materials=[ResourceDescriptor(name="resolved_experiment.json", digest={"sha256": "ab"})],
        resolved_experiment_digest="cd",
        isolation={"sandbox": "local", "network_enforced": True, "from_a_newer_runner": [1]},
        trial_outputs_digest="ef",
    )
    subject = ResourceDescriptor(name="trials/trial_1/trial_output.json", digest={"sha256": "12"})
    write_model(tmp_path / "attestation.json", Attestation(subject=[subject], predicate=predicate))
    raw = json.loads((tmp_path / "attestation.json").read_text())
    assert raw["_type"] == "https://in-toto.io/Statement/v1"
    assert raw["predicateType"] == "https://opslab.dev/lab-run/v1"
    assert raw["subject"] == [
        {"name": "trials/trial_1/trial_output.json", "digest": {"sha256": "12"}, "annotations": {}}
    ]
    assert (
        raw["predicate"]["schema_version"] == 1
        and raw["predicate"]["created_at"] == "2026-01-02T03:04:05+00:00"
    )
    back = read_model(tmp_path / "attestation.json", Attestation)
    assert back.predicate.isolation["from_a_newer_runner"] == [1] and back.subject[0].digest == {
        "sha256": "12"
    }
    raw["_type"] = "https://in-toto.io/Statement/v0.1"
    (tmp_path / "attestation.json").write_text(json.dumps(raw))
    with pytest.raises(InvalidInput) as err:
        read_model(tmp_path / "attestation.json", Attestation)
    assert err.value.details["errors"][0]["field"] == "attestation.json._type"


def test_a_trial_input_is_written_as_the_trial_input_model_writes_it() -> None:
    cfg = ExperimentConfig.model_validate(
        {
            "experiment": {"id": "exp", "name": "exp"},
            "dataset": {"path": "tasks.jsonl", "suite_id": "s", "split_id": "dev"},
            "runtime": {"harness": {"command": ["./h"]}},
            "variants": {"baseline": {"id": "base", "bindings": {"t": 0.1}}},
        }
    )
    task = {"task_id": "t1", "prompt": 'héllo \u2603 "quoted"', "weights": [1e-5, 2.5, 1e21], "n": None}
    bindings = {"model": {"temperature": 1e-7, "name": "m"}, "flag": True}
    t = Trial.model_construct(
        trial_id="trial_3",
        index=3,
        variant_id="base",
        bindings=bindings,
        task_id="t1",
        task=task,
        replication=2,
        seed=123456789,
    )
    extra = {"checkpoint": {"path": "/out/checkpoint/x", "label": None, "index": 0, "from_trial": "trial_1"}}
    model = TrialInput.model_construct(
        schema_version=1,
        run_id="run_x",
        trial_id="trial_3",
        experiment_id="exp",
        suite_id="s",
        split_id="dev",
        task_id="t1",
        task=task,
        variant=VariantRef.model_construct(id="base", bindings=bindings),
        variant_id="base",
        bindings=bindings,
        replication=2,
        seed=123456789,
        **extra,
    )
    written = trial_input_json(cfg, "run_x", t, extra)
    assert written == model.model_dump_json()
    assert TrialInput.model_validate_json(written).model_dump() == model.model_dump()


def _record_model(t: Trial, output: dict[str, Any], extra: dict[str, Any], started: float) -> TrialRecord:
    """The record as a model, the way the runner built it before it wrote the JSON itself."""
    trainer = {k: output[k] for k in TRAINER_FIELDS if k in output}
    if isinstance(trainer.get("objective"), dict):
        trainer["objective"] = Objective.model_construct(**trainer["objective"])
    base = {
        "schema_version": 1,
        **t.identity(),
        "outcome": output["outcome"],
        "metrics": output.get("metrics") or {},
        "result": output.get("result"),
        "error": output.get("error"),
        "exit_code": 0,
        "duration_ms": 12.346,
        "attempt": 2,
        "event_counts": {"tool_call": 3},
        "started_at": datetime.fromtimestamp(started, UTC),
        "ended_at": datetime.fromtimestamp(started + 12.3456 / 1000, UTC),
    }
    return TrialRecord.model_construct(set(base) | set(trainer) | set(extra), **base, **trainer, **extra)


@pytest.mark.parametrize(
    "output",
    [
        {"outcome": "success", "metrics": {"ok": 1, "score": 0.25, "flag": True, "gap": None, "big": 1e21}},
        {"outcome": "failure", "result": {"answer": ["a", 1, 2.5, None], "note": 'héllo \u2603 "q"'}},
        {"outcome": "error", "error": {"message": "boom", "code": 7}, "metrics": {}},
        {
            "outcome": "success",
            "objective": {"value": 3, "direction": "minimize", "name": "loss", "unit": "nats"},
            "train_loss": 0.5,
            "val_acc": 1,
            "wall_time_s": None,
            "checkpoints": [{"path": "/out/c1", "step": 1}],
        },
    ],
    ids=["metrics", "result", "error-object", "trainer"],
)
def test_a_trial_record_is_written_as_the_trial_record_model_writes_it(output: dict[str, Any]) -> None:
    t = Trial.model_construct(
        trial_id="trial_3",
        index=3,
        variant_id="base",
        bindings={},
        task_id="t1",
        task={},
        replication=2,
        seed=9,
    )
    extra = {"replay_of": "trial_3", "checkpoint": {"index": 0, "label": None}}
    started = 1_790_000_000.123456
    written = trial_record_json(
        t,
        outcome=output["outcome"],
        output=output,
        error=None,
        exit_code=0,
        duration_ms=12.3456,
        attempt=2,
        event_counts={"tool_call": 3},
        started=started,
        extra=extra,
    )
    model = _record_model(t, output, extra, started)
    assert written == model.model_dump_json(exclude_unset=True)
    assert (
        TrialRecord.model_validate_json(written).model_dump()
        == TrialRecord.model_validate_json(model.model_dump_json(exclude_unset=True)).model_dump()
    )


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux path is the one made without uname -p")
def test_the_runner_platform_reads_as_python_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # platform.platform() leaves out a processor that is "unknown" or the machine again: what uname -p
    # says on Linux. Made without it, the text is the same.
    for processor in ("unknown", os.uname().machine):
        monkeypatch.setattr(platform, "uname", _uname_with(processor))
        assert platform_name() == platform.platform()


def _uname_with(processor: str) -> Callable[[], tuple[str, ...]]:
    system = os.uname()
    fields = (system.sysname, system.nodename, system.release, system.version, system.machine, processor)
    return lambda: fields


def test_the_records_digest_made_record_by_record_is_the_canonical_digest_of_them_all() -> None:
    raws = [
        b'{"schema_version":1,"trial_id":"trial_2","outcome":"success","metrics":{"b":1,"a":0.5}}\n',
        '{"trial_id":"trial_1","result":{"z":["h\u00e9llo",null,1e21]},"error":{"m":"x"}}\n'.encode(),
    ]
    written = WrittenRecords()
    for raw in raws:
        written.add(json.loads(raw)["trial_id"], raw)
    records = [(TrialRecord.model_construct(trial_id=json.loads(raw)["trial_id"]), raw) for raw in raws]
    expected = canonical_digest([json.loads(raw) for raw in raws])
    assert records_digest(records, written.canonical) == expected
    assert records_digest(records, {}) == expected  # records the runner did not hand over: made at the end
    assert records_digest([], {}) == canonical_digest([])


def test_the_analysis_models_are_built_while_the_trials_run_not_as_the_run_ends() -> None:
    # A fresh interpreter: another test may have built them already in this one.
    probe = (
        "from opslab.lab.finish import ANALYSIS_MODELS, build_models\n"
        "from opslab.lab.session import LabRun, VariantResult, _import_analysis\n"
        "models = (*ANALYSIS_MODELS, LabRun, VariantResult)\n"
        "assert not any(m.__pydantic_complete__ for m in models), 'built as the command starts'\n"
        "_import_analysis(numpy=False)\n"
        "print(sorted(m.__name__ for m in models if not m.__pydantic_complete__))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
