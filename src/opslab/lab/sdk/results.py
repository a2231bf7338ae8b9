"""What each ``LabClient`` method returns: the ``--json`` envelope of its command as a typed model.

The lab's own models are reused wherever the CLI prints them (``Replay``, ``Fork``, ``TrialRecord``,
``ControlResult``, ``EventsReport``, ``SchemaReport``, the run's ``Comparison``); the rest are small
models of the envelope's fields. Reading is lenient one way: keys a newer runner adds are ignored
(``ExperimentSummary`` keeps them). After a run the client also reads the comparison the run wrote
(``analysis/comparison.json``), so ``result.comparison`` is there without a second command.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from opslab.lab.analysis import Comparison
from opslab.lab.artifacts import read_model
from opslab.lab.config import IntegrationLevel, NetworkMode, SanitizationProfile, WorkloadType
from opslab.lab.fork import Fork
from opslab.lab.hooks import EventsReport
from opslab.lab.pause import ControlResult
from opslab.lab.records import Isolation, Outcome, RunStatus, TrialRecord
from opslab.lab.replay import Replay
from opslab.lab.validate import SchemaReport


class _Envelope(BaseModel):
    """``{"ok": true, "command": …, …}``: the command that answered, then its own fields."""

    command: str


class PlannedTrial(BaseModel):
    trial_id: str
    variant_id: str
    task_id: str
    replication: int
    seed: int


class ExperimentSummary(BaseModel):
    """``opslab lab describe``: the resolved experiment, the harness as it will run, the trial plan."""

    model_config = ConfigDict(extra="allow")

    experiment_id: str
    workload_type: WorkloadType
    project_root: Path
    dataset_path: Path
    dataset_exists: bool = True
    dataset_error: str | None = None
    tasks: int
    variants: list[str]
    replications: int
    total_trials: int
    harness_command: list[str]
    harness_cwd: Path
    harness_script_resolved: Path | None
    harness_script_exists: bool
    integration_level: IntegrationLevel
    sanitization_profile: SanitizationProfile
    network_mode: NetworkMode
    allowed_hosts: list[str] = Field(default_factory=list)
    sandbox_mode: str
    container_image: str | None = None
    isolation: Isolation
    overrides: dict[str, JsonValue] = Field(default_factory=dict)
    first_trials: list[PlannedTrial] = Field(default_factory=list)


class DescribeResult(_Envelope):
    summary: ExperimentSummary


class RunInfo(BaseModel):
    """A finished (or paused, interrupted) run as ``run --json`` reports it."""

    run_id: str
    run_dir: Path
    status: RunStatus
    total_trials: int
    outcomes: dict[Outcome, int]
    tables: dict[str, int] = Field(default_factory=dict)
    retried: int = 0
    reported: int = 0
    report_failures: int = 0
    report_error: str | None = None


def read_comparison(run_dir: Path) -> Comparison | None:
    """``analysis/comparison.json`` of a run, or None before the run was analysed."""
    path = run_dir / "analysis" / "comparison.json"
    return read_model(path, Comparison) if path.is_file() else None


def read_trials(run_dir: Path) -> list[TrialRecord]:
    """Every finished trial of a run (``trials/<id>/trial_output.json``), in plan order."""
    paths = sorted((run_dir / "trials").glob("*/trial_output.json"), key=_plan_order)
    return [read_model(p, TrialRecord) for p in paths]


def _plan_order(path: Path) -> tuple[int, str]:
    name = path.parent.name  # trial_<n>: numerically, so trial_10 follows trial_9
    tail = name.rsplit("_", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 62, name)


class RunResult(_Envelope):
    """``run``, ``run-dev``, ``run-experiment``: the run, and its comparison (None until analysed)."""

    run: RunInfo
    comparison: Comparison | None = None

    def trials(self) -> list[TrialRecord]:
        return read_trials(self.run.run_dir)


class ResumeResult(_Envelope):
    """``resume``: what the control file says now; the run when this call ran its remaining trials."""

    control: ControlResult
    run: RunInfo | None = None
    comparison: Comparison | None = None


class PauseResult(_Envelope):
    control: ControlResult


class ReplayResult(_Envelope):
    replay: Replay


class ForkResult(_Envelope):
    fork: Fork
    trial: TrialRecord


class BundleInfo(BaseModel):
    """``publish``: the debug bundle written (its file list stays inside the bundle)."""

    path: Path
    run_id: str
    files: int
    redacted_files: int
    bytes: int
    sha256: str


class PublishResult(_Envelope):
    bundle: BundleInfo


class KnobsValidation(_Envelope):
    """``knobs-validate``: the manifest used, the knobs it declares, the overrides found valid."""

    manifest_path: Path
    knobs: list[str]
    values: dict[str, JsonValue]
    pointers_checked: bool


class HooksValidation(_Envelope):
    report: EventsReport


class SchemaValidation(_Envelope):
    report: SchemaReport
