"""A job as its routes show it: the common fields of ``opslab.wire.JobView`` read off a ``Job``."""

from __future__ import annotations

from typing import Any

from opslab.jobs.model import Job, wire_status
from opslab.wire.jobs import ErrorBody


def job_fields(job: Job) -> dict[str, Any]:
    """The common fields, for a capability's view: ``RcaRunView(**job_fields(job), …)``."""
    return {
        "status": wire_status(job.status),
        "step": job.step,
        "pct": job.pct,
        "message": job.message,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
        "error": (
            ErrorBody.model_validate(job.error) if job.status in ("failed", "crashed") and job.error else None
        ),
    }
