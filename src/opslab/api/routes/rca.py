"""RCA runs: create (idempotent, async), read, list, stream progress (SSE)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from opslab.api.deps import RuntimeDep
from opslab.errors import InvalidInput
from opslab.jobs import Job, NewJob
from opslab.rca.service import KIND
from opslab.runtime import Runtime

router = APIRouter(tags=["rca"])


def rca_view(job: Job) -> dict[str, Any]:
    view: dict[str, Any] = {
        "rca_run_id": job.id,
        "run_id": job.subject,
        "status": job.status,
        "step": job.step,
        "pct": job.pct,
        "message": job.message,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
    }
    if job.status == "done":
        view["report"] = job.result
    if job.status == "failed":
        view["error"] = job.error
    return view


def _create(rt: Runtime, run_id: str, force: bool, idempotency_key: str | None) -> tuple[Job, bool]:
    summary = rt.telemetry.summary(run_id)  # 404 for an unknown run
    new = NewJob(
        kind=KIND,
        payload={"run_id": run_id, "content_hash": summary.content_hash},
        subject=run_id,
        dedupe_key=f"{run_id}@{summary.content_hash}",
        idempotency_key=idempotency_key,
        max_attempts=rt.settings.job_max_attempts,
        force=force,
    )
    return rt.jobs.submit(new)


@router.post(
    "/agent-runs/{run_id}/rca-runs",
    status_code=202,
    responses={200: {"description": "An RCA of the same run content already exists; its id is returned."}},
)
async def create_rca_run(
    run_id: str,
    rt: RuntimeDep,
    force: Annotated[bool, Query(description="Start a new RCA even if one of this content exists.")] = False,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Start an RCA (202 ``{"rca_run_id"}``). While an RCA of the same run content is queued, running or
    done, the same id comes back; ``?force=true`` or changed run content starts a new one."""
    job, created = await run_in_threadpool(_create, rt, run_id, force, idempotency_key)
    body = {"rca_run_id": job.id, "run_id": run_id, "status": job.status, "created": created}
    return JSONResponse(status_code=202 if created else 200, content=body)


@router.get("/agent-runs/rca-runs/{rca_run_id}")
@router.get("/rca-runs/{rca_run_id}", include_in_schema=False)
def get_rca_run(rca_run_id: str, rt: RuntimeDep) -> dict[str, Any]:
    """Status, progress and (when done) the report."""
    return rca_view(rt.jobs.get(rca_run_id, kind=KIND))


@router.get("/agent-runs/{run_id}/rca-runs")
def list_rca_runs(
    run_id: str, rt: RuntimeDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, Any]:
    rt.telemetry.summary(run_id)
    return {
        "run_id": run_id,
        "items": [rca_view(j) for j in rt.jobs.list(kind=KIND, subject=run_id, limit=limit)],
    }


@router.get("/rca-runs/{rca_run_id}/stream")
async def stream_rca_run(
    rca_run_id: str,
    request: Request,
    rt: RuntimeDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """SSE: ``data: {"status", "step", "pct", "message", "updated_at"}`` per change, ending after done/failed.

    Each event's id is the job's progress counter; reconnect with ``Last-Event-ID`` to skip what you saw."""
    after = 0
    if last_event_id:
        if not last_event_id.strip().isdigit():
            raise InvalidInput.for_field("Last-Event-ID", "expected the id of an event from this stream")
        after = int(last_event_id)
    await run_in_threadpool(rt.jobs.get, rca_run_id, kind=KIND)  # 404 before the stream starts

    async def events() -> Any:
        async for event in rt.jobs.events(rca_run_id, after=after):
            if await request.is_disconnected():
                return
            yield ServerSentEvent(data=json.dumps(event.data(), separators=(",", ":")), id=str(event.seq))

    return EventSourceResponse(events(), ping=10, sep="\n")
