"""What the RCA routes answer: an RCA run (a job) with its report, and the answer to a create."""

from __future__ import annotations

from pydantic import BaseModel, Field

from opslab.jobs import Job, JobView, WireStatus
from opslab.rca.job import RCA
from opslab.rca.model import RcaReport


class RcaRunCreated(BaseModel):
    rca_run_id: str
    run_id: str
    status: WireStatus
    created: bool = Field(description="False when an RCA of the same run content already existed.")


class RcaRunView(JobView):
    rca_run_id: str
    run_id: str | None = Field(description="The agent run analysed.")
    report: RcaReport | None = Field(None, description="The report, once the RCA is done.")

    @classmethod
    def of(cls, job: Job) -> RcaRunView:
        report = RCA.result_of(job) if job.status == "succeeded" else None
        return cls(**JobView.fields_of(job), rca_run_id=job.id, run_id=job.subject, report=report)


class RcaRunList(BaseModel):
    run_id: str
    items: list[RcaRunView]
