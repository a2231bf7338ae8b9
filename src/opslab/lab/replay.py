"""Replay: re-execute one trial of a run from its artifacts, and say whether the output matches.

The trial runs again from its own ``trial_input.json`` (the same ids, task, bindings and seed), with the
run's frozen config and isolation and the project as it is now, in a new folder
(``replays/<trial_id>-<n>/``, see ``derived``); the original trial is never touched. The outcome, the
metrics and the result are compared field by field, as JSON paths (``metrics.accuracy``,
``result.items[2].id``); paths given in ``ignore`` (and everything under them) are left out — timings
rarely replay.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, JsonValue

from opslab import proc
from opslab.errors import Conflict
from opslab.lab.artifacts import now, write_model
from opslab.lab.derived import (
    RunOnDisk,
    TrialExtras,
    allocate,
    isolation_of,
    open_run,
    recorded_output,
    recorded_trial,
)
from opslab.lab.plan import Trial
from opslab.lab.records import SCHEMA_VERSION, Metric, Outcome, Timestamp, TrialError, TrialRecord
from opslab.lab.services import RunServicesScope
from opslab.lab.trial import TrialContext, run_trial


class TrialSummary(BaseModel):
    """What a replay compares, and the error for context."""

    outcome: Outcome
    metrics: dict[str, Metric]
    result: JsonValue
    error: TrialError = None

    @classmethod
    def of(cls, record: TrialRecord) -> TrialSummary:
        return cls(outcome=record.outcome, metrics=record.metrics, result=record.result, error=record.error)


class Difference(BaseModel):
    field: str  # a JSON path: outcome, metrics.<name>, result.<key>[<i>]…
    change: Literal["changed", "added", "removed"]
    original: JsonValue = None
    replay: JsonValue = None


class Replay(BaseModel):
    """``replays/<trial_id>-<n>/replay.json``: the replay of one trial and how it compares."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    trial_id: str
    replay_dir: Path
    trial_dir: Path
    created_at: Timestamp
    matches: bool
    differences: list[Difference]
    ignored: list[str]
    original: TrialSummary
    replay: TrialSummary


def replay_trial(
    run_dir: Path, trial_id: str, *, env_base: Mapping[str, str], ignore: Iterable[str] = ()
) -> Replay:
    """Re-execute ``trial_id`` of the run in ``run_dir`` into a new folder and compare; see the module
    docstring. A trial without a record yet has nothing to compare with (``Conflict``)."""
    run = open_run(run_dir)
    trial, _ = recorded_trial(run, trial_id)
    original = recorded_output(run, trial_id)
    if original is None:
        raise Conflict(
            f"trial {trial_id} of run {run.run_dir.name} has not finished: nothing to compare a replay with",
            details={"trial_id": trial_id},
        )
    home = allocate(run.run_dir / "replays", f"{trial_id}-")
    trial_dir = home / "trials" / trial_id
    with derived_context(run, home, env_base) as ctx:
        record = run_derived(ctx, trial, TrialExtras(trial_dir=str(trial_dir)))
    ignored = sorted(set(ignore))
    differences = compare_records(original, record, ignored)
    replay = Replay(
        run_id=run.run_dir.name,
        trial_id=trial_id,
        replay_dir=home,
        trial_dir=trial_dir,
        created_at=now(),
        matches=not differences,
        differences=differences,
        ignored=ignored,
        original=TrialSummary.of(original),
        replay=TrialSummary.of(record),
    )
    write_model(home / "replay.json", replay)
    return replay


@contextlib.contextmanager
def derived_context(run: RunOnDisk, home: Path, env_base: Mapping[str, str]) -> Iterator[TrialContext]:
    """The context a derived trial runs in: the run's isolation (refused, as a run would be, if this
    machine cannot establish it), the run's services serving ``home``, the harness tied to this process."""
    with RunServicesScope(run.resolved, home, isolation_of(run), env=env_base) as services:
        ctx = TrialContext(run.resolved, run.run_dir, dict(env_base), isolation=services)
        ctx.tie_to_runner = True
        yield ctx


def run_derived(ctx: TrialContext, trial: Trial, extras: TrialExtras) -> TrialRecord:
    try:
        return run_trial(ctx, trial, extras=extras)
    except KeyboardInterrupt:
        proc.kill_running()  # the harness must not outlive the command that started it
        raise


class _Absent(enum.Enum):
    ABSENT = "absent"


_Value = JsonValue | _Absent


def compare_records(
    original: TrialRecord, replay: TrialRecord, ignore: Iterable[str] = ()
) -> list[Difference]:
    """The differences in outcome, metrics and result, as JSON paths; ``ignore``d paths left out."""
    found: list[Difference] = []
    _diff("outcome", original.outcome, replay.outcome, found)
    _diff("metrics", dict[str, JsonValue](original.metrics), dict[str, JsonValue](replay.metrics), found)
    _diff("result", original.result, replay.result, found)
    skip = tuple(ignore)
    return [d for d in found if not any(d.field == p or d.field.startswith((p + ".", p + "[")) for p in skip)]


def _diff(path: str, a: _Value, b: _Value, found: list[Difference]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            _diff(f"{path}.{key}", a.get(key, _Absent.ABSENT), b.get(key, _Absent.ABSENT), found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(f"{path}[{i}]", x, y, found)
    elif isinstance(a, _Absent):
        if not isinstance(b, _Absent):
            found.append(Difference(field=path, change="added", replay=b))
    elif isinstance(b, _Absent):
        found.append(Difference(field=path, change="removed", original=a))
    elif not _same(a, b):
        found.append(Difference(field=path, change="changed", original=a, replay=b))


def _same(a: JsonValue, b: JsonValue) -> bool:
    # true == 1 in Python, not in JSON; 1 == 1.0 in both.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b
