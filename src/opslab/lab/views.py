"""What the lab's job routes answer: the request to start a lab run, and a lab run (a job) with its result."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from opslab.jobs import Job, JobView, Payload, WireStatus, WorkKind, job_fields
from opslab.lab.session import LabRun

Executor = Literal["local", "rq"]


class LabRunIn(BaseModel):
    """An experiment file on the service's machine, or an inline experiment and the project it runs in;
    either way under ``OPSLAB_LAB_ALLOWED_ROOTS``."""

    model_config = ConfigDict(extra="forbid")
    experiment_path: str | None = Field(
        None,
        max_length=4096,
        description="Absolute path of an experiment file (its project: the folder holding its .lab/).",
    )
    experiment: dict[str, JsonValue] | None = Field(
        None,
        description="An inline experiment (the YAML as JSON); needs project_path. Its paths are relative to "
        "<project_path>/.lab/, where it is written as api-<id>.yaml when the run starts.",
    )
    project_path: str | None = Field(
        None, max_length=4096, description="Absolute path of the project an inline experiment runs in."
    )
    executor: Executor = Field(
        "local", description="local: the trials run in the job's process; rq: on `opslab worker` processes."
    )
    concurrency: int | None = Field(None, ge=1, le=1024, description="Trials at once (local executor).")


class LabRunCreated(BaseModel):
    lab_run_id: str
    status: WireStatus
    created: bool


class LabRunView(JobView):
    lab_run_id: str
    result: LabRun | None = Field(
        None, description="Once done: the run as `opslab lab run --json` reports it, with its variants."
    )

    @classmethod
    def of(cls, job: Job) -> LabRunView:
        return cls(**job_fields(job), lab_run_id=job.id, result=LAB.result_of(job))


class LabPayload(Payload):
    experiment_path: str = Field(min_length=1, description="The experiment file (written first when inline).")
    experiment: dict[str, JsonValue] | None = Field(None, description="An inline experiment to write there.")
    executor: Literal["local", "rq"] = "local"
    concurrency: int | None = Field(None, ge=1, le=1024)


LAB: WorkKind[LabPayload, LabRun] = WorkKind(
    "lab", LabPayload, LabRun, done_step="Lab run complete", failed_step="Lab run failed", max_attempts=1
)
