"""AutoOps in the service: the seed's routes (``POST /simulate_build``, ``GET /get_best_action``,
``POST /suggest_fix``), builds reported by any CI (``POST /builds``), and the continuous loop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Body, FastAPI, Query, Request

from opslab.api.background import AutoOpsLoop
from opslab.api.deps import RuntimeDep, service_handle
from opslab.autoops import (
    AutoOpsStatus,
    BuildAccepted,
    BuildContext,
    BuildIn,
    BuildRecord,
    BuildResult,
    Choice,
    ErrorClass,
    FixRequest,
    FixSuggestion,
    LoopIn,
    LoopState,
    SimulateBuildIn,
    SimulatedBuild,
)
from opslab.errors import InvalidInput, OpslabError

log = logging.getLogger("opslab.autoops")


@asynccontextmanager
async def _monitor(app: FastAPI) -> AsyncIterator[None]:
    """The controller starts with the service, so /metrics reports the builds and the optimizer from the
    database from the first scrape, not from this process's first build."""
    try:
        await to_thread.run_sync(app.state.runtime.autoops)
    except OpslabError as exc:  # e.g. the dqn optimizer without its extra: its routes say so when asked
        log.warning("autoops not started: %s", exc)
    yield


router = APIRouter(tags=["autoops"], lifespan=_monitor)


@router.post("/simulate_build")
async def simulate_build(
    rt: RuntimeDep, body: Annotated[SimulateBuildIn | None, Body()] = None
) -> SimulatedBuild:
    """Run one build on the simulated CI runner: ``{}`` lets the optimizer choose the configuration for a
    drawn pipeline; ``action_id`` or ``config`` (and ``context``) fix them. The optimizer learns from it."""
    req = body or SimulateBuildIn()
    if req.action_id is not None and req.config is not None:
        raise InvalidInput.for_field("config", "give action_id or config, not both")
    auto = await to_thread.run_sync(rt.autoops)
    record = await to_thread.run_sync(
        lambda: auto.simulate(context=req.context, config=req.config, action_id=req.action_id)
    )
    return SimulatedBuild.of(record)


@router.get("/get_best_action")
async def get_best_action(
    rt: RuntimeDep,
    repo_size_mb: Annotated[float | None, Query(ge=0, le=100_000)] = None,
    dependency_churn: Annotated[float | None, Query(ge=0, le=1)] = None,
    flaky_share: Annotated[float | None, Query(ge=0, le=1)] = None,
    last_error_class: Annotated[ErrorClass | None, Query()] = None,
) -> Choice:
    """The configuration the optimizer believes best for this pipeline (posterior means, no exploration),
    with ``confidence``: the posterior probability that it is the best."""
    given = {
        "repo_size_mb": repo_size_mb,
        "dependency_churn": dependency_churn,
        "flaky_share": flaky_share,
        "last_error_class": last_error_class,
    }
    context = BuildContext.model_validate({k: v for k, v in given.items() if v is not None})
    auto = await to_thread.run_sync(rt.autoops)
    return await to_thread.run_sync(lambda: auto.best(context))


@router.post("/suggest_fix")
async def suggest_fix(body: FixRequest, rt: RuntimeDep) -> FixSuggestion:
    """A fix for a failed build from the knowledge base, citing the document it came from, or "no known
    fix"; a configuration change in it is a prior for the optimizer, never applied blindly."""
    auto = await to_thread.run_sync(rt.autoops)
    return await to_thread.run_sync(lambda: auto.suggest(body))


@router.post("/builds", status_code=201)
async def report_build(body: BuildIn, rt: RuntimeDep) -> BuildAccepted:
    """A finished build from any CI (configuration, context, status, duration, error): kept and learned
    from. Nothing is stored when the body is refused (422 naming the field)."""
    if body.status == "failed" and not body.error:
        raise InvalidInput.for_field("error", "a failed build needs its error text")
    result = BuildResult(
        status=body.status,
        duration=body.duration,
        error=body.error if body.status == "failed" else None,
        error_class=body.error_class if body.status == "failed" else None,
    )
    auto = await to_thread.run_sync(rt.autoops)
    record: BuildRecord = await to_thread.run_sync(
        lambda: auto.record(config=body.config, context=body.context, result=result, source="ci")
    )
    return BuildAccepted(build_id=record.build_id, action_id=record.action_id)


@router.get("/autoops/status")
async def status(request: Request, rt: RuntimeDep) -> AutoOpsStatus:
    """Builds kept by status, the success rate, the loop's progress and the latest builds."""
    counts = await to_thread.run_sync(lambda: rt.autoops().builds.count())
    recent = await to_thread.run_sync(lambda: rt.autoops().builds.recent(limit=10))
    total = sum(counts.values())
    return AutoOpsStatus(
        builds=counts,
        success_rate=round(counts.get("success", 0) / total, 4) if total else None,
        loop=service_handle(request, "autoops", AutoOpsLoop).state(),
        recent=recent,
    )


@router.post("/autoops/loop", status_code=202)
async def start_loop(body: LoopIn, request: Request) -> LoopState:
    """Start the continuous loop: build, learn, ask the responder on failure, ``builds`` times; 409 while
    one runs. Learning persists, so a new loop continues where the last one stopped."""
    return await to_thread.run_sync(
        lambda: service_handle(request, "autoops", AutoOpsLoop).start(body.builds, body.interval_s)
    )


@router.post("/autoops/loop/stop")
async def stop_loop(request: Request) -> LoopState:
    """Stop the loop after the build in progress."""
    return await to_thread.run_sync(service_handle(request, "autoops", AutoOpsLoop).stop)
