"""An RCA run (a job) as the routes answer it: the wire's ``RcaRunView`` read off its job."""

from __future__ import annotations

from opslab.jobs import Job, job_fields
from opslab.rca.job import RCA
from opslab.wire.rca import RcaRunView


def rca_run_view(job: Job) -> RcaRunView:
    report = RCA.result_of(job) if job.status == "succeeded" else None
    return RcaRunView(**job_fields(job), rca_run_id=job.id, run_id=job.subject, report=report)
