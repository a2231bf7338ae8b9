"""What people ask of the responder — respond now, approve or reject an action an incident waits for — as
typed work of the shared work core. The work is the responder's own (``WorkKind.service``): whichever
replica a request reaches, the replica holding the responder's lease does it, so two replicas never act
on one target; the request waits on the job like any other, and the job's row is its record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from pydantic import Field

from opslab.errors import InvalidInput
from opslab.jobs import Payload, Work, WorkContext, WorkKind
from opslab.responder.model import Incident

KIND = "responder"
SERVICE = "responder"


class Command(Payload):
    command: Literal["trigger", "approve", "reject"]
    incident_id: str | None = Field(None, max_length=64)
    approver: str = Field("api", min_length=1, max_length=200)


class Outcome(Payload):
    incident: Incident | None = Field(None, description="The incident it opened or decided, if any.")
    message: str


COMMAND: WorkKind[Command, Outcome] = WorkKind(
    KIND,
    Command,
    Outcome,
    done_step="Responded",
    failed_step="Response failed",
    max_attempts=1,  # an approval is not repeated by itself: the incident says what happened
    service=SERVICE,
)


class Responding(Protocol):
    def trigger(self) -> Incident | None: ...
    def approve(self, incident_id: str, *, approver: str) -> Incident: ...
    def reject(self, incident_id: str, *, approver: str) -> Incident: ...


def command_work(responder: Callable[[], Responding]) -> Work[Command, Outcome]:
    def run(cmd: Command, ctx: WorkContext) -> Outcome:
        r = responder()
        if cmd.command == "trigger":
            ctx.report("Responding", 10, "polling the target and responding to what it shows")
            incident = r.trigger()
            message = (
                f"incident {incident.id}: {incident.status}" if incident else "target healthy: no incident"
            )
            return Outcome(incident=incident, message=message)
        if cmd.incident_id is None:
            raise InvalidInput.for_field("incident_id", f"{cmd.command} needs the incident")
        ctx.report("Deciding", 10, f"{cmd.command} by {cmd.approver}")
        decide = r.approve if cmd.command == "approve" else r.reject
        incident = decide(cmd.incident_id, approver=cmd.approver)
        return Outcome(incident=incident, message=f"incident {incident.id}: {incident.status}")

    return COMMAND.bind(run)
