"""The runner's per-trial files written as their models write them, without building the models: a
``TrialInput`` and a ``TrialRecord`` constructed and dumped cost each trial as much as the rest of its
record keeping. Tests hold each text equal to its model's ``model_dump_json``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from opslab.lab.config import ExperimentConfig
from opslab.lab.plan import Trial
from opslab.lab.records import (
    FLOAT_TRAINER_FIELDS,
    OBJECTIVE_FIELDS,
    SCHEMA_VERSION,
    TRAINER_FIELDS,
    Outcome,
    timestamp_ms,
)


def trial_input_json(cfg: ExperimentConfig, run_id: str, t: Trial, extra: Mapping[str, Any]) -> str:
    """``trial_input.json``'s text: a ``TrialInput`` as pydantic writes it (the same encoder, field for
    field), from the runner's validated config and plan without building the model (the two a trial made
    cost as much as the rest of its record keeping)."""
    fields = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "trial_id": t.trial_id,
        "experiment_id": cfg.experiment.id,
        "suite_id": cfg.dataset.suite_id,
        "split_id": cfg.dataset.split_id,
        "task_id": t.task_id,
        "task": t.task,
        "variant": {"id": t.variant_id, "bindings": t.bindings},
        "variant_id": t.variant_id,
        "bindings": t.bindings,
        "replication": t.replication,
        "seed": t.seed,
        **extra,
    }
    return to_json(fields).decode()


def trial_record_json(
    t: Trial,
    *,
    outcome: Outcome,
    output: Mapping[str, Any],
    error: str | None,
    exit_code: int | None,
    duration_ms: float,
    attempt: int,
    event_counts: dict[str, int],
    started: float,
    extra: Mapping[str, Any],
    notes: list[str] | None = None,
) -> str:
    """``trial_output.json``'s text: a ``TrialRecord`` of the fields set (the trainer fields only when the
    harness reported them) as pydantic writes it — the same encoder, the model's field order — without
    building the model: a record constructed and dumped cost each trial a tenth of a millisecond."""
    fields: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        **t.identity(),
        "outcome": outcome,
        "metrics": output.get("metrics") or {},
        "result": output.get("result"),
        "error": error or output.get("error"),
        "exit_code": exit_code,
        "duration_ms": round(duration_ms, 3),
        "attempt": attempt,
        "event_counts": event_counts,
    }
    for name in TRAINER_FIELDS:
        if name in output:
            fields[name] = _as_float(output[name]) if name in FLOAT_TRAINER_FIELDS else output[name]
    objective = fields.get("objective")
    if isinstance(objective, dict):  # the model's fields first, then any the harness added
        ordered = {k: objective[k] for k in OBJECTIVE_FIELDS if k in objective} | objective
        if "value" in ordered:
            ordered["value"] = _as_float(ordered["value"])
        fields["objective"] = ordered
    fields["started_at"] = timestamp_ms(datetime.fromtimestamp(started, UTC))
    fields["ended_at"] = timestamp_ms(datetime.fromtimestamp(started + duration_ms / 1000, UTC))
    if notes:
        fields["notes"] = notes
    fields.update(extra)
    return to_json(fields).decode()


def _as_float(value: Any) -> Any:
    """A number as a ``float`` field holds it (``3`` is written ``3.0``, as the model writes it)."""
    return float(value) if type(value) is int else value
