"""RCA runs: create (idempotent, async), read, list, stream progress (SSE)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from opslab.api.deps import IdempotencyKey, RuntimeDep
from opslab.api.jobs import STREAM_DOC, LastEventId, stream_job
from opslab.jobs import Job, wire_status
from opslab.rca import KIND, RCA, RcaPayload, RcaRunCreated, RcaRunList, RcaRunView, rca_run_view
from opslab.runtime import Runtime
from opslab.telemetry import RunExport

router = APIRouter(tags=["rca"])


def dedupe_key(run_id: str, content_hash: str) -> str:
    """One live RCA per run content. Readable when it fits the column; a digest when a long id would not."""
    key = f"{run_id}@{content_hash}"
    return key if len(key) <= 200 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def start_rca(rt: Runtime, run_id: str, force: bool, idempotency_key: str | None) -> tuple[Job, bool]:
    """Submit an RCA of ``run_id`` (the same job back while one of this content lives, unless ``force``)."""
    summary = rt.telemetry.summary(run_id)  # 404 for an unknown run
    new = RCA.new(
        RcaPayload(run_id=run_id, content_hash=summary.content_hash),
        subject=run_id,
        dedupe_key=dedupe_key(run_id, summary.content_hash),
        idempotency_key=idempotency_key,
        max_attempts=rt.settings.job_max_attempts,
        force=force,
    )
    return rt.jobs.submit(new)


@router.post(
    "/agent-runs/{run_id}/rca-runs",
    status_code=202,
    responses={
        200: {
            "model": RcaRunCreated,
            "description": "An RCA of the same run content already exists; its id is returned.",
        }
    },
)
async def create_rca_run(
    run_id: str,
    rt: RuntimeDep,
    response: Response,
    force: Annotated[bool, Query(description="Start a new RCA even if one of this content exists.")] = False,
    idempotency_key: IdempotencyKey = None,
) -> RcaRunCreated:
    """Start an RCA (202 ``{"rca_run_id"}``). While an RCA of the same run content is queued, running or
    done, the same id comes back; ``?force=true`` or changed run content starts a new one."""
    job, created = await to_thread.run_sync(lambda: start_rca(rt, run_id, force, idempotency_key))
    response.status_code = 202 if created else 200
    return RcaRunCreated(rca_run_id=job.id, run_id=run_id, status=wire_status(job.status), created=created)


@router.get("/agent-runs/rca-runs/{rca_run_id}")
@router.get("/rca-runs/{rca_run_id}", include_in_schema=False)
def get_rca_run(rca_run_id: str, rt: RuntimeDep) -> RcaRunView:
    """Status, progress and (when done) the report."""
    return rca_run_view(rt.jobs.get(rca_run_id, kind=KIND))


@router.post("/agent-runs/rca-runs/{rca_run_id}/cancel")
@router.post("/rca-runs/{rca_run_id}/cancel", include_in_schema=False)
def cancel_rca_run(rca_run_id: str, rt: RuntimeDep) -> RcaRunView:
    """Cancel the RCA: a queued one ends ``cancelled`` at once, a running one ``cancelling`` until its
    worker stops it; 409 once it has ended otherwise."""
    return rca_run_view(rt.jobs.cancel(rca_run_id, kind=KIND))


@router.get("/agent-runs/{run_id}/rca-runs")
def list_rca_runs(run_id: str, rt: RuntimeDep, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> RcaRunList:
    rt.telemetry.summary(run_id)
    jobs = rt.jobs.list(kind=KIND, subject=run_id, limit=limit)
    return RcaRunList(run_id=run_id, items=[rca_run_view(j) for j in jobs])


@router.get("/rca-runs/{rca_run_id}/stream", response_class=EventSourceResponse, responses=STREAM_DOC)
async def stream_rca_run(
    rca_run_id: str, request: Request, rt: RuntimeDep, last_event_id: LastEventId = None
) -> Response:
    """SSE: the RCA's progress events from the first (or after ``Last-Event-ID``), until done/failed."""
    return await stream_job(rt.jobs, KIND, rca_run_id, request, last_event_id)


class OtlpExport(BaseModel):
    """An OTLP/HTTP JSON ``ExportTraceServiceRequest``: what ``POST /v1/traces`` (and any OTLP backend)
    takes."""

    resourceSpans: list[dict[str, Any]]  # noqa: N815 (OTLP's JSON field name)


@router.get(
    "/agent-runs/{run_id}/export",
    response_model=RunExport | OtlpExport,
    responses={
        200: {"description": "JSON: a RunExport; OTLP: an ExportTraceServiceRequest (OTLP/HTTP JSON)."}
    },
)
def export_run(
    run_id: str,
    rt: RuntimeDep,
    format: Annotated[  # noqa: A002 - the query parameter's name
        Literal["json", "otlp"],
        Query(description="json: the run and all kept for it; otlp: its spans, for any OTLP backend."),
    ] = "json",
) -> Response:
    """The whole run to share or move: the run as ``POST /agent-runs`` takes it back, its summary, its
    trace's spans and logs, its scores and its RCA reports (``format=json``); or as OTLP spans."""
    if format == "otlp":
        return JSONResponse(rt.telemetry.export_otlp(run_id))
    exported = rt.telemetry.export(run_id)
    reports = rt.jobs.list(kind=KIND, subject=run_id, limit=200)
    exported.rca = [rca_run_view(j).model_dump(mode="json") for j in reports]
    return JSONResponse(exported.model_dump(mode="json"))
