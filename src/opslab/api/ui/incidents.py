"""Incidents: live and past incidents, one incident's workflow steps as a timeline with its diagnosis and
the knowledge documents it used, and the pending action's Approve / Reject buttons."""

from __future__ import annotations

from typing import Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from opslab.api.deps import RuntimeDep
from opslab.api.routes.agent import decide_approval, service_of
from opslab.api.ui.auth import require_csrf, require_writer
from opslab.api.ui.render import page
from opslab.errors import Conflict
from opslab.responder import Approval

router = APIRouter(prefix="/ui", include_in_schema=False)
LIVE = ("open", "awaiting_approval")
Status = Literal["", "open", "resolved", "escalated", "awaiting_approval"]


@router.get("/incidents", response_class=HTMLResponse)
async def incidents_page(request: Request, rt: RuntimeDep, status: Status = "") -> HTMLResponse:
    found = await to_thread.run_sync(lambda: rt.incidents.list(limit=200, status=status or None))
    try:
        responder = await to_thread.run_sync(lambda: rt.responder().status())
        configured = None
    except Conflict as exc:
        responder, configured = None, exc.message
    partial = request.headers.get("hx-target") == "incident-list"
    return page(
        request,
        "incidents_list.html" if partial else "incidents.html",
        active="incidents",
        title="Incidents",
        live_incidents=[i for i in found if i.status in LIVE],
        past=[i for i in found if i.status not in LIVE],
        responder=responder,
        not_configured=configured,
        status=status,
        watching=rt.settings.responder_enabled,
    )


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
async def incident_page(request: Request, incident_id: str, rt: RuntimeDep) -> HTMLResponse:
    incident = await to_thread.run_sync(lambda: rt.incidents.get(incident_id))
    audit = await to_thread.run_sync(lambda: rt.incidents.audit(incident_id=incident_id, limit=500))
    return page(
        request,
        "incident.html",
        active="incidents",
        title=f"Incident {incident_id}",
        incident=incident,
        audit=audit,
        live=incident.status in LIVE,
    )


@router.post("/incidents/{incident_id}/decide")
async def decide(
    request: Request,
    incident_id: str,
    rt: RuntimeDep,
    decision: Annotated[Literal["approve", "reject"], Form()],
    csrf: Annotated[str | None, Form()] = None,
) -> RedirectResponse:
    """The Approve / Reject buttons: the same decision as ``POST /agent/incidents/{id}/approve``, made by
    ``dashboard``; the action then runs and is verified in the background while the page follows it."""
    require_writer(request)
    require_csrf(request, csrf)
    body = Approval(approver="dashboard", approved=decision == "approve")
    await decide_approval(rt, service_of(request), incident_id, body, wait=False)
    return RedirectResponse(f"/ui/incidents/{incident_id}", status_code=303)
