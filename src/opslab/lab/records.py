"""The lab's files as typed models, each carrying a ``schema_version``: the trial input the harness reads
(``trial_input.json``), the trial record the runner writes (``trial_output.json``), the run's manifest
and its attestation.

Written with ``model_dump_json``, read with ``model_validate_json``. Reading is lenient one way only:
fields added since a file was written take their defaults, and keys this version does not know are kept
(a newer runner's, or a harness's where the seed lets it add its own). The runner writes its own
per-trial files as these models would, without building them (``record_json``): values it made itself
need no second validation on the per-trial path.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, PlainSerializer

from opslab import __version__
from opslab.lab.config import NetworkMode

SCHEMA_VERSION = 1

Outcome = Literal["success", "failure", "error", "timeout", "skipped"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
# running: a runner holds it (or died without a word); paused: stopped by `opslab lab pause` with no runner
# left; interrupted: its runner stopped by a signal; both continue with `resume` / `run --resume`.
RunStatus = Literal["running", "paused", "interrupted", "stopped", "completed"]
# A harness metric: the protocol's JSON Schema allows numbers, booleans and null. Order matters: a
# union tries exact types first, so 1 stays 1 and true stays true when a record is read back.
Metric = bool | int | float | None
TrialError = str | dict[str, JsonValue] | None


def _seconds(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def timestamp_ms(at: datetime) -> str:
    """A ``PreciseTimestamp`` as the files hold it (``2026-01-02T03:04:05.678+00:00``)."""
    return at.isoformat(timespec="milliseconds")


# UTC timestamps as the files have always held them (``2026-01-02T03:04:05+00:00``).
Timestamp = Annotated[AwareDatetime, PlainSerializer(_seconds, return_type=str)]
PreciseTimestamp = Annotated[AwareDatetime, PlainSerializer(timestamp_ms, return_type=str)]


class _Record(BaseModel):
    # Built when first used (see ``config._M``): a run's start-up writes a manifest and reads no record.
    model_config = ConfigDict(extra="allow", defer_build=True)


class VariantRef(_Record):
    id: str
    bindings: dict[str, JsonValue] = Field(default_factory=dict)


class TrialInput(_Record):
    """``trial_input.json``: what the harness gets — the task verbatim, the variant, the ids, the seed."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    trial_id: str
    experiment_id: str
    suite_id: str
    split_id: str
    task_id: str
    task: dict[str, JsonValue]
    variant: VariantRef
    variant_id: str
    bindings: dict[str, JsonValue] = Field(default_factory=dict)
    replication: int
    seed: int


class Objective(_Record):
    """A trainer workload's objective (required of ``trainer`` harness outputs)."""

    name: str
    value: float
    direction: Literal["minimize", "maximize"]


OBJECTIVE_FIELDS = tuple(Objective.model_fields)


TRAINER_FIELDS = ("objective", "train_loss", "val_acc", "wall_time_s", "checkpoints")


class TrialRecord(_Record):
    """``trials/<id>/trial_output.json``: one finished trial, written last (its presence means done).

    ``started_at`` / ``ended_at`` (the harness process) were added after the first records were written:
    older records read with None. The trainer fields are written only when the harness reported them.
    """

    schema_version: int = SCHEMA_VERSION
    trial_id: str
    variant_id: str
    task_id: str
    replication: int
    seed: int
    outcome: Outcome
    metrics: dict[str, Metric] = Field(default_factory=dict)
    result: JsonValue = None
    error: TrialError = None
    exit_code: int | None = None
    duration_ms: float = 0.0
    attempt: int = 1
    event_counts: dict[str, int] = Field(default_factory=dict)
    objective: Objective | None = None
    train_loss: float | None = None
    val_acc: float | None = None
    wall_time_s: float | None = None
    checkpoints: list[JsonValue] | None = None
    started_at: PreciseTimestamp | None = None
    ended_at: PreciseTimestamp | None = None
    # What the runner refused or cut of what the trial left (a link, an events file over its cap, a log
    # cut to its ends), a line each; written only when there is something to say.
    notes: list[str] | None = None

    def error_text(self) -> str | None:
        """The error as one string (a harness may report an object)."""
        if self.error is None or isinstance(self.error, str):
            return self.error
        message = self.error.get("message")
        return message if isinstance(message, str) else str(self.error)


# The trainer fields a ``float`` holds: the model writes an integer there as ``3.0`` (see ``record_json``).
FLOAT_TRAINER_FIELDS = frozenset(
    name for name in TRAINER_FIELDS if TrialRecord.model_fields[name].annotation == float | None
)


class Isolation(_Record):
    """How trials were isolated, as applied: the sandbox and its backend (``local``, ``rootfs`` =
    bubblewrap over an image's root filesystem, ``oci`` = podman/docker), the network mode and how it
    was enforced. Manifests written before enforcement existed read with ``network_enforced`` False."""

    sandbox: Literal["local", "container"] = "local"
    sandbox_backend: Literal["local", "rootfs", "oci"] = "local"
    sandbox_mechanism: str = "host process"
    container_image: str | None = None
    rootfs: str | None = None
    network_mode: NetworkMode = "none"
    network_enforced: bool = False
    network_mechanism: str = ""
    allowed_hosts: list[str] = Field(default_factory=list)
    note: str = ""


class Retry(_Record):
    """A trial re-run by ``--retry-errors``: which, the error it had, when."""

    trial_id: str
    previous_error: TrialError = None
    at: Timestamp


def runner_info() -> dict[str, str]:
    """The runner fields of a manifest or attestation: which runner, on which Python and platform."""
    return {
        "runner": "opslab",
        "runner_version": __version__,
        "python": platform.python_version(),
        "platform": platform_name(),
    }


def platform_name() -> str:
    """``platform.platform()``. On Linux the same text made without its ``uname -p``: a process started to
    learn the processor, which on Linux names the machine again or says "unknown", both then left out."""
    if sys.platform != "linux":
        return platform.platform()
    system = os.uname()
    libc, version = platform.libc_ver()  # from confstr: no process, no file read
    return "-".join(p for p in (system.sysname, system.release, system.machine, "with", libc + version) if p)


class Manifest(_Record):
    """``manifest.json``: the run's metadata — experiment, paths, timestamps, status, overrides, isolation,
    retries, and the runner that made it."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    experiment_id: str
    experiment_path: str
    project_root: str
    dataset_path: str
    created_at: Timestamp
    finished_at: Timestamp | None = None
    status: RunStatus = "running"
    total_trials: int = 0
    overrides: dict[str, JsonValue] = Field(default_factory=dict)
    isolation: Isolation = Field(default_factory=Isolation)
    retries: list[Retry] = Field(default_factory=list)
    runner: str = "opslab"
    runner_version: str = ""
    python: str = ""
    platform: str = ""


StatementType = Literal["https://in-toto.io/Statement/v1"]
STATEMENT_TYPE: StatementType = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://opslab.dev/lab-run/v1"


class ResourceDescriptor(_Record):
    """An in-toto resource descriptor: a file by name (relative to the run or the project) and digest."""

    name: str
    digest: dict[str, str] = Field(default_factory=dict)  # {"sha256": …}
    annotations: dict[str, JsonValue] = Field(default_factory=dict)


class RunnerRef(_Record):
    name: str = "opslab"
    version: str = ""
    python: str = ""
    platform: str = ""


class LabRunPredicate(_Record):
    """What the run was made from and how: the materials (the resolved config, the dataset, the harness
    files), the isolation the runner applied (``manifest.isolation`` as written) and the runner."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    experiment_id: str = ""
    created_at: Timestamp
    materials: list[ResourceDescriptor] = Field(default_factory=list)
    resolved_experiment_digest: str  # SHA-256 of the canonical JSON (``resolved_experiment.digest``)
    harness_command: list[str] = Field(default_factory=list)
    isolation: dict[str, JsonValue] = Field(default_factory=dict)
    runner: RunnerRef = Field(default_factory=RunnerRef)
    trial_outputs_digest: str  # over every record as written, in plan order


class Attestation(_Record):
    """``attestation.json``: an in-toto Statement v1 whose subjects are the trial records (one per
    ``trials/<id>/trial_output.json``, by SHA-256 of the file) and whose predicate is ``LabRunPredicate``."""

    model_config = ConfigDict(
        extra="allow",
        defer_build=True,
        serialize_by_alias=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    statement_type: StatementType = Field(STATEMENT_TYPE, alias="_type")
    subject: list[ResourceDescriptor]
    predicate_type: str = Field(PREDICATE_TYPE, alias="predicateType")
    predicate: LabRunPredicate
