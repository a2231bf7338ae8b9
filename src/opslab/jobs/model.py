"""Jobs as values: what is persisted and what progress events carry.

A job's states (as in Prefect's state types)::

    queued ──claim──> running ──handler returns──> succeeded
      │                  │  └──handler raises──> failed (or queued again, while attempts remain)
      │                  │  └──its worker is lost─> queued ahead of new work (or crashed, out of attempts)
      │                  └──cancel──> cancelling ──handler stops──> cancelled
      └──cancel──> cancelled

``succeeded`` travels as ``"done"`` on the wire (the Smart SRE seed's word, ``WireStatus``); every other
state keeps its name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from opslab.wire.jobs import WireStatus

JobStatus = Literal["queued", "running", "cancelling", "cancelled", "succeeded", "failed", "crashed"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "running", "cancelling")
TERMINAL: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled", "crashed")
# Terminal states that free a dedupe key: a new request for the same work starts a new job.
RETRYABLE_END: tuple[JobStatus, ...] = ("failed", "cancelled", "crashed")


def wire_status(status: JobStatus) -> WireStatus:
    """The state as routes, streams and clients name it: ``succeeded`` is ``done``."""
    return "done" if status == "succeeded" else status


class Job(BaseModel):
    id: str
    kind: str
    status: JobStatus
    pct: float = 0.0
    step: str = ""
    message: str = ""
    seq: int = Field(0, description="Progress counter: every state change increments it (SSE event id).")
    attempts: int = 0
    max_attempts: int = 3
    payload: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    subject: str | None = Field(None, description="What the job is about (e.g. the run id of an RCA).")
    group_id: str | None = Field(None, description="The batch it belongs to (a lab run's trial tasks).")
    dedupe_key: str | None = None
    idempotency_key: str | None = None
    owner: str | None = None
    queue_ref: str | None = Field(None, description="The queue message that carries it now (RQ job id).")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def event(self) -> ProgressEvent:
        return ProgressEvent(
            job_id=self.id,
            seq=self.seq,
            status=self.status,
            step=self.step,
            pct=self.pct,
            message=self.message,
            updated_at=self.updated_at,
        )


class ProgressEvent(BaseModel):
    """One SSE event. ``data`` is exactly the seed's shape: status, step, pct, message, updated_at."""

    job_id: str
    seq: int
    status: JobStatus
    step: str
    pct: float
    message: str
    updated_at: datetime

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def data(self) -> dict[str, Any]:
        pct: float | int = int(self.pct) if float(self.pct).is_integer() else self.pct
        return {
            "status": wire_status(self.status),
            "step": self.step,
            "pct": pct,
            "message": self.message,
            "updated_at": self.updated_at.isoformat().replace("+00:00", "Z"),
        }


class NewJob(BaseModel):
    kind: str
    payload: dict[str, Any] = Field(default_factory=dict)
    subject: str | None = None
    group_id: str | None = None
    dedupe_key: str | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    max_attempts: int = 3
    force: bool = Field(
        False, description="Create a new job even when an active or done one has this dedupe key."
    )
