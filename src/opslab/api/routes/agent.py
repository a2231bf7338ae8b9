"""The incident responder inside the service: status, manual trigger, incidents (each with its whole
state history), approvals, the kill switch, the audit trail, and an SSE stream of an incident's progress.

The responder watches the target on its own only with ``OPSLAB_RESPONDER_ENABLED=true``; these routes
work either way (a trigger runs one response now). Long work (a trigger, an approved action and its
verification) runs in the background: the route answers 202 at once unless ``?wait=true``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from opslab.api.background import ResponderService
from opslab.api.deps import RuntimeDep, service_handle
from opslab.api.jobs import PING_S, LastEventId, parse_last_event_id, sse_doc
from opslab.errors import Conflict, from_wire
from opslab.jobs import Job, wire_status
from opslab.responder import (
    COMMAND,
    AgentStatus,
    Approval,
    AuditList,
    Command,
    Incident,
    IncidentList,
    IncidentSummary,
    KillSwitch,
    Outcome,
    TriggerResult,
)
from opslab.runtime import Runtime

router = APIRouter(prefix="/agent", tags=["responder"])
log = logging.getLogger("opslab.api")
FINISHED: frozenset[str] = frozenset({"resolved", "escalated"})
POLL_S = 0.5


Wait = Annotated[bool, Query(description="Answer when the response is over, not at once.")]


def service_of(request: Request) -> ResponderService:
    return service_handle(request, "responder", ResponderService)


def _status(rt: Runtime, service: ResponderService) -> AgentStatus:
    common = {
        "enabled": rt.settings.responder_enabled,
        "poll_interval_s": rt.settings.responder_poll_interval_s,
        "active": service.active,
        "holder": service.held_by(),
    }
    try:
        base = rt.responder().status()
    except Conflict as exc:
        return AgentStatus(state="not_configured", configured=False, message=exc.message, **common)
    halted, reason = service.kill_switch()
    status = base.model_copy(update={"halted": halted or base.halted})
    if not rt.settings.responder_enabled and status.state == "watching":
        # Nothing watches: the routes still work (a trigger responds once), but no loop polls the target.
        status = status.model_copy(update={"state": "disabled"})
    return AgentStatus(**status.model_dump(), **common)


async def respond(rt: Runtime, service: ResponderService, command: Command, *, wait: bool) -> Job:
    """Do ``command`` as the responder's work: the lease holder takes it, wherever it was asked; with no
    holder (the responder watches nowhere) this process does it. ``wait``: its end, else as submitted."""
    job, _ = await to_thread.run_sync(lambda: rt.jobs.submit(COMMAND.new(command)))
    here = service.held_by() is None
    if here and not wait:
        asyncio.get_running_loop().run_in_executor(None, service.run_here, job.id)
        return job
    if here:
        return await to_thread.run_sync(lambda: service.run_here(job.id)) or rt.jobs.get(job.id)
    while not (job := await to_thread.run_sync(lambda: rt.jobs.get(job.id))).terminal and wait:
        await asyncio.sleep(POLL_S)
    return job


def _outcome(job: Job) -> Outcome:
    outcome = COMMAND.result_of(job)
    if outcome is None and job.status in ("failed", "crashed", "cancelled"):
        raise from_wire(500, {"error": job.error or {"code": "operation_failed", "message": job.message}})
    return outcome or Outcome(message=f"responding as job {job.id} ({wire_status(job.status)})")


@router.get("/status")
async def agent_status(rt: RuntimeDep, request: Request) -> AgentStatus:
    """What the responder is doing, what it last saw, its baseline, open incidents, the kill switch, and
    whether this replica is the one running it (``active``; ``holder`` names the one that is)."""
    return await to_thread.run_sync(lambda: _status(rt, service_of(request)))


@router.post(
    "/trigger",
    status_code=202,
    responses={200: {"model": TriggerResult, "description": "With ?wait=true: done."}},
)
async def trigger(rt: RuntimeDep, request: Request, response: Response, wait: Wait = False) -> TriggerResult:
    """Respond now: poll the target and, if anything is anomalous, run the whole workflow (in the replica
    running the responder)."""
    await to_thread.run_sync(rt.responder)  # 409 at once when it is not configured
    job = await respond(rt, service_of(request), Command(command="trigger"), wait=wait)
    if not wait:
        return TriggerResult(
            accepted=True, message=f"responding in the background (job {job.id}); see GET /agent/incidents"
        )
    response.status_code = 200
    outcome = _outcome(job)
    return TriggerResult(accepted=True, incident=outcome.incident, message=outcome.message)


@router.get("/incidents")
async def list_incidents(
    rt: RuntimeDep,
    status: Annotated[Literal["open", "resolved", "escalated", "awaiting_approval"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> IncidentList:
    """Incidents, newest first."""
    found = await to_thread.run_sync(lambda: rt.incidents.list(limit=limit, status=status))
    return IncidentList(incidents=[IncidentSummary.of(i) for i in found])


@router.get("/incidents/{incident_id}")
async def get_incident(incident_id: str, rt: RuntimeDep) -> Incident:
    """One incident with its full state history (every step, tool call and action)."""
    return await to_thread.run_sync(lambda: rt.incidents.get(incident_id))


@router.post(
    "/incidents/{incident_id}/approve",
    status_code=202,
    responses={200: {"model": Incident, "description": "With ?wait=true: done."}},
)
async def approve(
    incident_id: str, body: Approval, rt: RuntimeDep, request: Request, response: Response, wait: Wait = False
) -> Incident:
    """Approve (or, with ``"approved": false``, reject) the high-risk action an incident waits for; 409 if
    it waits for none. The approved action runs and is verified in the background unless ``?wait=true``."""
    if wait:
        response.status_code = 200
    return await decide_approval(rt, service_of(request), incident_id, body, wait=wait)


async def decide_approval(
    rt: Runtime, service: ResponderService, incident_id: str, body: Approval, *, wait: bool
) -> Incident:
    """Approve or reject what ``incident_id`` waits for (409 if nothing): the API's and the dashboard's."""
    incident = await to_thread.run_sync(lambda: rt.incidents.get(incident_id))
    await to_thread.run_sync(rt.responder)
    if incident.status != "awaiting_approval":
        raise Conflict(
            f"incident {incident_id!r} is {incident.status}, not awaiting approval",
            details={"id": incident_id, "status": incident.status},
        )
    verb: Literal["approve", "reject"] = "approve" if body.approved else "reject"
    job = await respond(
        rt, service, Command(command=verb, incident_id=incident_id, approver=body.approver), wait=wait
    )
    if not wait:
        return incident
    outcome = _outcome(job)
    return outcome.incident or incident


@router.post("/kill-switch")
async def kill_switch(body: KillSwitch, rt: RuntimeDep, request: Request) -> AgentStatus:
    """Engage (no action is executed; watching and diagnosing go on) or release the kill switch — on every
    replica: it is shared state, followed by the one running the responder."""
    await to_thread.run_sync(rt.responder)
    service = service_of(request)
    reason = body.reason or ("kill switch via API" if body.engaged else "")
    await to_thread.run_sync(lambda: service.set_kill_switch(body.engaged, reason))
    return await to_thread.run_sync(lambda: _status(rt, service))


@router.get("/audit")
async def audit(
    rt: RuntimeDep,
    incident_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> AuditList:
    """The append-only trail of every decision and action, oldest first."""
    records = await to_thread.run_sync(lambda: rt.incidents.audit(limit=limit, incident_id=incident_id))
    return AuditList(records=records)


INCIDENT_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: sse_doc(
        "Server-sent events: one per step of the incident, until it is resolved or escalated.",
        '{"node", "message", "at", "status"}',
        'id: 1\ndata: {"node":"detect","message":"p95 2.4 s over 1 s","at":"2026-11-22T10:00:00Z",'
        '"status":"open"}\n\n',
    )
}


@router.get(
    "/incidents/{incident_id}/stream", response_class=EventSourceResponse, responses=INCIDENT_STREAM_DOC
)
async def stream_incident(
    incident_id: str, request: Request, rt: RuntimeDep, last_event_id: LastEventId = None
) -> EventSourceResponse:
    """SSE: the incident's steps from the first (or after ``Last-Event-ID``), then each new one live;
    ends once the incident is resolved or escalated. Each event: ``id: <n>``, ``data: {"node", "message",
    "at", "status"}``."""
    after = parse_last_event_id(last_event_id)
    await to_thread.run_sync(lambda: rt.incidents.get(incident_id))  # 404 before the stream starts

    async def events() -> AsyncIterator[ServerSentEvent]:
        sent = after
        while True:
            incident = await to_thread.run_sync(lambda: rt.incidents.get(incident_id))
            for n, step in enumerate(incident.steps[sent:], start=sent + 1):
                data = {
                    "node": step.node,
                    "message": step.message,
                    "at": step.at.isoformat(),
                    "status": incident.status,
                }
                yield ServerSentEvent(data=json.dumps(data, separators=(",", ":")), id=str(n))
                sent = n
            if incident.status in FINISHED or await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)

    return EventSourceResponse(events(), ping=PING_S, sep="\n")
