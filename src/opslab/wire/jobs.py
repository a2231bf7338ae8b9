"""What job routes answer and clients read: one view of a job's state, one progress event shape.

Each capability's view of its jobs extends ``JobView`` with its own id name and typed result (the RCA's
``rca_run_id`` and ``report``, the canary's ``canary_run_id`` and ``result``). States travel as
``WireStatus``: a succeeded job is ``done`` (the Smart SRE seed's word); every other state keeps its name."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

WireStatus = Literal["queued", "running", "cancelling", "cancelled", "done", "failed", "crashed"]
WIRE_TERMINAL: tuple[WireStatus, ...] = ("done", "failed", "cancelled", "crashed")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class JobView(BaseModel):
    status: WireStatus = Field(
        description="queued, running, cancelling, cancelled, done (succeeded), failed or crashed (its worker "
        "was lost on every attempt)."
    )
    step: str = Field(description="The step the job is in (or ended with).")
    pct: float = Field(description="Progress, 0–100.")
    message: str
    attempts: int = Field(description="Attempts started so far (a retried job has more than one).")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    error: ErrorBody | None = Field(None, description="Why the job failed or crashed.")


class JobEvent(BaseModel):
    """One progress event as a stream delivers it (``id:`` is ``seq``; ``data:`` the other fields)."""

    seq: int
    status: WireStatus
    step: str
    pct: float
    message: str
    updated_at: datetime

    @property
    def terminal(self) -> bool:
        return self.status in WIRE_TERMINAL
