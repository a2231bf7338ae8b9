"""Agent runs: ingest (single, batch), read, list and filter, timeline, trace tree, scores, sessions."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from opslab.api.deps import KnownQuery, TelemetryDep, body_schema, read_body, read_json
from opslab.errors import InvalidInput
from opslab.telemetry import (
    NO_NUL,
    AgentRunIn,
    BatchResult,
    IngestResult,
    Name,
    PruneResult,
    RunFilter,
    RunPage,
    RunStatus,
    RunSummary,
    RunTree,
    ScoreIn,
    ScoreView,
    Timeline,
    TreeNode,
    UtcDatetime,
    parse_duration,
)

router = APIRouter(tags=["telemetry"], dependencies=[KnownQuery])


@router.post(
    "/agent-runs",
    status_code=201,
    openapi_extra=body_schema(AgentRunIn),
    responses={
        200: {"model": IngestResult, "description": "An existing run was replaced (upsert by run_id)."}
    },
)
async def ingest_run(request: Request, response: Response, svc: TelemetryDep) -> IngestResult:
    """Ingest one agent run; upsert by ``run_id`` (a re-ingest replaces its children atomically). The body
    may be gzip- or deflate-compressed (``Content-Encoding``)."""
    raw = await read_body(request)
    if not raw.strip():
        raise InvalidInput.for_field("body", "empty body; expected JSON")
    result = await to_thread.run_sync(svc.ingest_json, raw)
    if result.status == "updated":
        response.status_code = 200
    return result


@router.post(
    "/agent-runs/batch",
    openapi_extra=body_schema(AgentRunIn, array=True),
    responses={207: {"model": BatchResult, "description": "Some items failed; see each item's result."}},
)
async def ingest_batch(request: Request, svc: TelemetryDep) -> BatchResult:
    """Ingest many runs: one result per item; a bad item never blocks or half-writes the good ones."""
    raw = await read_body(request)
    if not raw.strip():
        raise InvalidInput.for_field("body", "empty body; expected a JSON array of agent runs")
    result = await to_thread.run_sync(svc.ingest_batch_json, raw)
    if result.failed:
        return JSONResponse(status_code=207, content=result.model_dump(mode="json"))  # type: ignore[return-value]
    return result


def _text(description: str) -> object:
    return Query(min_length=1, max_length=200, pattern=NO_NUL, description=description)


@router.get("/agent-runs")
def list_runs(
    svc: TelemetryDep,
    status: RunStatus | None = None,
    agent_name: Name | None = None,
    agent_version: Name | None = None,
    environment: Name | None = None,
    model: Annotated[str | None, _text("Runs of this model (its full name, e.g. gpt-4o-2024-08-06).")] = None,
    since: UtcDatetime | None = None,
    until: UtcDatetime | None = None,
    experiment: Name | None = None,
    session_id: Annotated[str | None, _text("Runs of this session (conversation).")] = None,
    user_id: Annotated[str | None, _text("Runs for this end user.")] = None,
    tag: Annotated[str | None, _text("Runs carrying this tag.")] = None,
    score: Annotated[str | None, _text("Runs with a score of this name (see score_min, score_max).")] = None,
    score_min: Annotated[
        float | None, Query(allow_inf_nan=False, description="Needs `score` (else 422): its value >= this.")
    ] = None,
    score_max: Annotated[
        float | None, Query(allow_inf_nan=False, description="Needs `score` (else 422): its value <= this.")
    ] = None,
    q: Annotated[
        str | None,
        _text(
            "Free text, case-insensitive, in the run's input, output and error, its steps' input and output, "
            "and its failed tool calls' errors."
        ),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> RunPage:
    """Runs, newest first, filtered in SQL, a page at a time (``next_cursor``). An unknown query parameter
    is a 422 naming it."""
    if (score_min is not None or score_max is not None) and not score:
        raise InvalidInput.for_field("query.score", "score_min and score_max need the score name")
    flt = RunFilter(
        status=status,
        agent_name=agent_name,
        agent_version=agent_version,
        environment=environment,
        model=model,
        since=since,
        until=until,
        experiment=experiment,
        session_id=session_id,
        user_id=user_id,
        tag=tag,
        score=score,
        score_min=score_min,
        score_max=score_max,
        q=q,
    )
    return svc.list_runs(flt, cursor=cursor, limit=limit)


@router.get("/agent-runs/{run_id}")
def get_run(run_id: str, svc: TelemetryDep) -> RunSummary:
    """Run metadata with counts of steps, tool calls, failed tool calls and guardrail events, its session,
    user, tags, metadata, input and output, token counts, cost and scores."""
    return svc.summary(run_id)


@router.get("/agent-runs/{run_id}/timeline")
def get_timeline(run_id: str, svc: TelemetryDep) -> Timeline:
    """Steps, tool calls, guardrail events and the trace's log records merged in time order, for replay."""
    return svc.timeline(run_id)


@router.get("/agent-runs/{run_id}/tree")
def get_tree(run_id: str, svc: TelemetryDep) -> RunTree:
    """The run as a tree, depth first: its spans nested (OTLP runs) or its steps with their tool calls and
    guardrail events; latency, tokens and cost per node; the failing path marked."""
    return svc.tree(run_id)


@router.get("/agent-runs/{run_id}/nodes/{node_id}")
def get_node(run_id: str, node_id: str, svc: TelemetryDep) -> TreeNode:
    """One node of the run — a span, a step, a tool call or a guardrail event — with all stored for it:
    kind, timing, status, model and tokens, an LLM call's messages, a tool call's arguments and result,
    a span's attributes and events."""
    return svc.node(run_id, node_id)


@router.delete("/agent-runs/{run_id}", status_code=204, response_class=Response)
async def delete_run(run_id: str, svc: TelemetryDep) -> Response:
    """Delete a run with its steps, tool calls, events, tags, scores, RCA reports, and its trace's spans
    and logs once no other run holds them. Needs the write token."""
    await to_thread.run_sync(svc.delete, run_id)
    return Response(status_code=204)


@router.delete("/agent-runs")
async def prune_runs(
    svc: TelemetryDep,
    older_than: Annotated[
        str,
        Query(
            min_length=2,
            max_length=20,
            pattern=r"^\d+[smhdw]$",
            description="Delete the runs started longer ago than this: 30d, 12h, 2w (s, m, h, d, w).",
        ),
    ],
) -> PruneResult:
    """Retention: delete every run started more than ``older_than`` ago, with all kept for each (as
    ``DELETE /agent-runs/{id}``). Needs the write token."""
    deleted = await to_thread.run_sync(lambda: svc.prune(older_than=parse_duration(older_than, "older_than")))
    return PruneResult(deleted=deleted, older_than=older_than)


@router.post(
    "/agent-runs/{run_id}/scores",
    status_code=201,
    openapi_extra=body_schema(ScoreIn),
)
async def add_score(run_id: str, request: Request, svc: TelemetryDep) -> ScoreView:
    """Attach a score (feedback) to a run: ``{"name", "value", "comment", "source"}``, source one of
    ``user``, ``evaluator``, ``annotation``, ``api``. Scores outlive a re-ingest of the run."""
    data = await read_json(request)
    return await to_thread.run_sync(lambda: svc.add_score(run_id, data))


@router.get("/sessions/{session_id}")
def get_session(
    session_id: Annotated[str, Path(min_length=1, max_length=200, description="The session's id.")],
    svc: TelemetryDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> RunPage:
    """The runs of one session, oldest first (up to ``limit``)."""
    flt = RunFilter.model_validate({"session_id": session_id})
    page = svc.list_runs(flt, cursor=None, limit=limit)
    return RunPage(items=list(reversed(page.items)), next_cursor=None)
