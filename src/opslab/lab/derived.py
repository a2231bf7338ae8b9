"""Trials derived from a run's own — replays and forks — and what they read of the run.

A derived trial never touches ``trials/``, which stays the plan (so the analysis never changes). Each goes
to a folder of its own, laid out as a run folder of one trial::

    replays/<trial_id>-<n>/trials/<trial_id>/            the trial re-executed, same trial_input.json
    replays/<trial_id>-<n>/replay.json                   what matched, what differed
    forks/<trial_id>-fork<n>/fork.json                   from which trial, which checkpoint, what was set
    forks/<trial_id>-fork<n>/trials/<trial_id>-fork<n>/  the forked trial (checkpoint in out/checkpoint/)

— so that the services a run gives its trials (the egress proxy's log, the OpenTelemetry collector that
writes each trial's spans into ``trials/<id>/out/``) serve a derived trial in its own folder, never in the
original's. A derived trial runs with the run's frozen config (``resolved_experiment.json``), the run's
isolation and the project as it is now.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import JsonValue

from opslab.errors import NotFound
from opslab.lab.artifacts import read_json, read_model
from opslab.lab.config import Resolved, load_tasks, parse_config
from opslab.lab.isolation import IsolationPlan, plan_of, preflight
from opslab.lab.plan import Trial
from opslab.lab.records import Manifest, TrialInput, TrialRecord

TRIAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class TrialExtras:
    """What a replay or a fork changes in ``run_trial``: the trial folder (default ``trials/<id>``),
    fields added to ``trial_input.json`` and echoed in the record, and files or folders copied into the
    trial's ``out/`` before the harness starts (path under ``out/`` -> source)."""

    trial_dir: str | None = None
    fields: Mapping[str, JsonValue] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def place(self, out_dir: str) -> None:
        for rel, source in self.files.items():
            dest = os.path.join(out_dir, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if os.path.isdir(source):
                shutil.copytree(source, dest, symlinks=True)
            else:
                shutil.copy2(source, dest)


@dataclass(frozen=True)
class RunOnDisk:
    """A run as its folder holds it: the manifest and the experiment it froze."""

    run_dir: Path
    manifest: Manifest
    resolved: Resolved


def open_run(run_dir: Path, *, with_tasks: bool = False) -> RunOnDisk:
    """The run in ``run_dir``, its config as frozen when it started and its paths from the manifest;
    the dataset is read only ``with_tasks`` (a replay has its task in ``trial_input.json``)."""
    if not (run_dir / "manifest.json").is_file():
        raise NotFound(f"{run_dir}: not a lab run (no manifest.json)", details={"run_dir": str(run_dir)})
    manifest = read_model(run_dir / "manifest.json", Manifest)
    config = parse_config(read_json(run_dir / "resolved_experiment.json"))
    dataset = Path(manifest.dataset_path)
    resolved = Resolved(
        config=config,
        experiment_path=Path(manifest.experiment_path),
        project_root=Path(manifest.project_root),
        dataset_path=dataset,
        tasks=load_tasks(dataset, config.dataset.limit) if with_tasks else [],
    )
    return RunOnDisk(run_dir.resolve(), manifest, resolved)


def isolation_of(run: RunOnDisk) -> IsolationPlan:
    """The isolation the run's trials get, from its frozen config (and a container if it had one),
    refused as a run would be if this machine cannot establish it."""
    plan = plan_of(run.resolved, force_container=run.manifest.isolation.sandbox == "container")
    preflight(plan)
    return plan


def recorded_trial(run: RunOnDisk, trial_id: str) -> tuple[Trial, TrialInput]:
    """A trial of the run as its ``trial_input.json`` gave it to the harness."""
    path = run.run_dir / "trials" / trial_id / "trial_input.json"
    if not TRIAL_ID.fullmatch(trial_id) or ".." in trial_id or not path.is_file():
        shown = trial_id if len(trial_id) <= 80 else trial_id[:77] + "..."
        raise NotFound(
            f"no trial {shown!r} in run {run.run_dir.name}",
            details={"trial_id": shown, "run_dir": str(run.run_dir)},
        )
    given = read_model(path, TrialInput)
    index = trial_id.removeprefix("trial_")
    trial = Trial(
        trial_id=trial_id,
        index=int(index) if index.isdigit() else 0,
        variant_id=given.variant_id,
        bindings=dict(given.bindings),
        task_id=given.task_id,
        task=dict(given.task),
        replication=given.replication,
        seed=given.seed,
    )
    return trial, given


def recorded_output(run: RunOnDisk, trial_id: str) -> TrialRecord | None:
    path = run.run_dir / "trials" / trial_id / "trial_output.json"
    return read_model(path, TrialRecord) if path.is_file() else None


def allocate(parent: Path, stem: str) -> Path:
    """A new derived folder ``parent/<stem><n>`` (with its ``trials/``), n the first free from 1; creating
    it claims it."""
    parent.mkdir(parents=True, exist_ok=True)
    n = 1 + sum(1 for p in parent.iterdir() if p.name.startswith(stem) and p.name[len(stem) :].isdigit())
    while True:
        try:
            (parent / f"{stem}{n}").mkdir()
            break
        except FileExistsError:
            n += 1
    (parent / f"{stem}{n}" / "trials").mkdir()
    return parent / f"{stem}{n}"
