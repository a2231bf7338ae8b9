"""The responder's views on the wire: what ``/agent/*`` answers and accepts (the service and the client
share them)."""

from __future__ import annotations

from pydantic import BaseModel, Field, JsonValue

from opslab.responder.model import AuditRecord, Diagnosis, Incident, IncidentStatus, ResponderStatus


class AgentStatus(ResponderStatus):
    enabled: bool = Field(description="Whether the autonomous loop runs inside this service.")
    active: bool = Field(
        False, description="Whether this replica is the one running the responder (it holds its lease)."
    )
    holder: str | None = Field(None, description="The replica running the responder, if one does.")
    configured: bool = Field(True, description="Whether a target and an action server are known.")
    message: str = ""
    poll_interval_s: float


class IncidentSummary(BaseModel):
    id: str
    status: IncidentStatus
    category: str | None
    diagnosis: Diagnosis | None
    confidence: float
    actions: list[str] = Field(description="The actions executed, in order (`name(params)`).")
    opened_at: str
    resolved_at: str | None

    @classmethod
    def of(cls, i: Incident) -> IncidentSummary:
        return cls(
            id=i.id,
            status=i.status,
            category=i.category,
            diagnosis=i.diagnosis,
            confidence=i.confidence,
            actions=[
                f"{a.action}({', '.join(f'{k}={v}' for k, v in sorted(a.params.items()))})" for a in i.actions
            ],
            opened_at=i.opened_at.isoformat(),
            resolved_at=i.resolved_at.isoformat() if i.resolved_at else None,
        )


def _call(name: str, params: dict[str, JsonValue]) -> str:
    return f"{name}({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})"


class IncidentList(BaseModel):
    incidents: list[IncidentSummary]


class TriggerResult(BaseModel):
    accepted: bool
    incident: Incident | None = Field(
        None, description="With ?wait=true: the incident, or null when healthy."
    )
    message: str


class Approval(BaseModel):
    approver: str = Field("api", min_length=1, max_length=200)
    approved: bool = True


class KillSwitch(BaseModel):
    engaged: bool
    reason: str = Field("", max_length=500)


class AuditList(BaseModel):
    records: list[AuditRecord]
