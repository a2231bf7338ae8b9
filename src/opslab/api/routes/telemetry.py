"""Agent-run telemetry: ingest (single, batch, OTLP), read, list, timeline."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from opslab.api.deps import TelemetryDep, body_schema, read_json
from opslab.errors import InvalidInput
from opslab.telemetry import (
    NO_NUL,
    AgentRunIn,
    BatchResult,
    IngestResult,
    Name,
    RunFilter,
    RunPage,
    RunStatus,
    RunSummary,
    Timeline,
    UtcDatetime,
    decode_protobuf,
    encode_export_response,
)

router = APIRouter(tags=["telemetry"])


@router.post(
    "/agent-runs",
    status_code=201,
    openapi_extra=body_schema(AgentRunIn),
    responses={200: {"description": "An existing run was replaced (upsert by run_id)."}},
)
async def ingest_run(request: Request, response: Response, svc: TelemetryDep) -> IngestResult:
    """Ingest one agent run; upsert by ``run_id`` (a re-ingest replaces its children atomically)."""
    data = await read_json(request)
    result = await to_thread.run_sync(svc.ingest, data)
    if result.status == "updated":
        response.status_code = 200
    return result


@router.post(
    "/agent-runs/batch",
    openapi_extra=body_schema(AgentRunIn, array=True),
    responses={207: {"description": "Some items failed; see each item's result."}},
)
async def ingest_batch(request: Request, svc: TelemetryDep) -> BatchResult:
    """Ingest many runs: one result per item; a bad item never blocks or half-writes the good ones."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidInput.for_field("body", "empty body; expected a JSON array of agent runs")
    result = await to_thread.run_sync(svc.ingest_batch_json, raw)
    if result.failed:
        return JSONResponse(status_code=207, content=result.model_dump(mode="json"))  # type: ignore[return-value]
    return result


OTLP_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "An OTLP ExportTraceServiceRequest (OTLP/HTTP JSON mapping).",
                    "properties": {"resourceSpans": {"type": "array", "items": {"type": "object"}}},
                }
            },
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("/v1/traces", openapi_extra=OTLP_BODY)
async def ingest_otlp(request: Request, svc: TelemetryDep) -> Response:
    """OTLP/HTTP trace export (JSON or protobuf) of OpenTelemetry GenAI spans."""
    if request.headers.get("content-type", "").startswith("application/x-protobuf"):
        body = decode_protobuf(await request.body())
        result = await to_thread.run_sync(svc.ingest_otlp, body)
        answer = encode_export_response(result.rejected_spans, "; ".join(result.errors))
        return Response(content=answer, media_type="application/x-protobuf")
    result = await to_thread.run_sync(svc.ingest_otlp, await read_json(request))
    partial = (
        {"rejectedSpans": result.rejected_spans, "errorMessage": "; ".join(result.errors)}
        if result.rejected_spans
        else {}
    )
    return JSONResponse({"partialSuccess": partial, "opslab": result.model_dump(mode="json")})


@router.get("/agent-runs")
def list_runs(
    svc: TelemetryDep,
    status: RunStatus | None = None,
    agent_name: Name | None = None,
    agent_version: Name | None = None,
    environment: Name | None = None,
    since: UtcDatetime | None = None,
    until: UtcDatetime | None = None,
    experiment: Name | None = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=NO_NUL,
            description="Free text, case-insensitive, in the run's or a failed tool call's error.",
        ),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> RunPage:
    """Runs, newest first, filtered in SQL, a page at a time (``next_cursor``)."""
    flt = RunFilter(
        status=status,
        agent_name=agent_name,
        agent_version=agent_version,
        environment=environment,
        since=since,
        until=until,
        experiment=experiment,
        q=q,
    )
    return svc.list_runs(flt, cursor=cursor, limit=limit)


@router.get("/agent-runs/{run_id}")
def get_run(run_id: str, svc: TelemetryDep) -> RunSummary:
    """Run metadata with counts of steps, tool calls, failed tool calls and guardrail events."""
    return svc.summary(run_id)


@router.get("/agent-runs/{run_id}/timeline")
def get_timeline(run_id: str, svc: TelemetryDep) -> Timeline:
    """Steps, tool calls and guardrail events merged in time order, for replay."""
    return svc.timeline(run_id)
