"""What the canary routes answer: the request to start a canary, and a canary run (a job) with its result."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from opslab.canary.history import RunRecord
from opslab.canary.job import CANARY
from opslab.canary.model import DryRun
from opslab.canary.plan import Plan
from opslab.jobs import Job, JobView, WireStatus, job_fields


class CanaryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: Plan = Field(description="The canary plan (the plan YAML as JSON).")
    dry_run: StrictBool = Field(False, description="Plan only: send no load, change no flag.")


class CanaryRunCreated(BaseModel):
    canary_run_id: str
    status: WireStatus
    created: bool


class CanaryRunView(JobView):
    canary_run_id: str
    result: RunRecord | DryRun | None = Field(
        None,
        description="Once done (or cancelled, with its INTERRUPTED record): the run as the history records "
        "it, or what a dry run would do.",
    )

    @classmethod
    def of(cls, job: Job) -> CanaryRunView:
        return cls(**job_fields(job), canary_run_id=job.id, result=CANARY.result_of(job))
