"""Canary runs started from the API: a job per run, its result, and an SSE progress stream."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from opslab.api.deps import RuntimeDep, read_json
from opslab.canary.plan import Plan, parse_plan
from opslab.errors import InvalidInput
from opslab.jobs import Job, NewJob

router = APIRouter(tags=["canary"])
KIND = "canary"


def view(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {
        "canary_run_id": job.id,
        "status": job.status,
        "step": job.step,
        "pct": job.pct,
        "message": job.message,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }
    if job.status == "done":
        out["result"] = job.result
    if job.status == "failed":
        out["error"] = job.error
    return out


@router.post(
    "/canary/runs",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"plan": Plan.model_json_schema(), "dry_run": {"type": "boolean"}},
                        "required": ["plan"],
                    }
                }
            }
        }
    },
)
async def create_canary_run(
    request: Request, rt: RuntimeDep, idempotency_key: Annotated[str | None, Header(max_length=200)] = None
) -> JSONResponse:
    """Start a canary run as a job: body ``{"plan": {…the plan YAML as JSON…}, "dry_run": false}``."""
    body = await read_json(request)
    if not isinstance(body, dict) or "plan" not in body:
        raise InvalidInput.for_field("plan", "required: the canary plan")
    plan = parse_plan(body["plan"])  # refused before anything runs
    payload = {
        "plan": plan.model_dump(mode="json"),
        "dry_run": bool(body.get("dry_run")),
        "run_key": uuid.uuid4().hex[:12],
    }
    job, created = await run_in_threadpool(
        rt.jobs.submit,
        NewJob(
            kind=KIND,
            payload=payload,
            subject=plan.target.base_url,
            idempotency_key=idempotency_key,
            max_attempts=1,
        ),
    )
    return JSONResponse(
        status_code=202 if created else 200,
        content={"canary_run_id": job.id, "status": job.status, "created": created},
    )


@router.get("/canary/runs/{run_id}")
def get_canary_run(run_id: str, rt: RuntimeDep) -> dict[str, Any]:
    return view(rt.jobs.get(run_id, kind=KIND))


@router.get("/canary/runs/{run_id}/stream")
async def stream_canary_run(
    run_id: str, request: Request, rt: RuntimeDep, last_event_id: Annotated[str | None, Header()] = None
) -> EventSourceResponse:
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    await run_in_threadpool(rt.jobs.get, run_id, kind=KIND)

    async def events() -> Any:
        async for event in rt.jobs.events(run_id, after=after):
            if await request.is_disconnected():
                return
            yield ServerSentEvent(data=json.dumps(event.data(), separators=(",", ":")), id=str(event.seq))

    return EventSourceResponse(events(), ping=10, sep="\n")
