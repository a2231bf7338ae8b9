"""The sandbox target: a search-like service whose latency and errors follow its flags, seeded and
analytically known (see ``model.py``), so a flag change has a known effect on p95.

Routes: ``GET /api/search``; ``GET|POST /api/flags``; ``GET /api/lab/config`` (dependency health, the
seed's health gate); ``GET /metrics``; ``POST /api/lab/run`` + ``GET /api/lab/report`` (its own
experiment); and for experiments on it ``POST /api/sandbox/health``, ``POST /api/sandbox/faults``,
``GET /api/sandbox/model``. The operational side the responder works on (``/api/v1/*`` orders, health,
metrics, pool, logs, flags; ``/admin/*`` faults, deploys, pool) lives in ``ops.py`` and ``ops_routes.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import JsonValue

from opslab.sandbox.app import create_service_app
from opslab.sandbox.target.experiment import add_experiment_routes
from opslab.sandbox.target.model import Faults, LatencyModel, TargetState
from opslab.sandbox.target.ops import OpsOptions, OpsWorld
from opslab.sandbox.target.ops_routes import add_ops_routes
from opslab.wire import SERVER_TIME_HEADER

# Event-loop timers fire on whole milliseconds, late by up to one: aim half a tick early so the served
# latency follows the model on average (see GET /api/sandbox/model).
EARLY_S = 0.0005


def create_target_app(
    *, seed: int = 42, model: LatencyModel | None = None, ops: OpsOptions | None = None
) -> FastAPI:
    """The target. Without ``ops`` (the canary's own tests) its orders side runs without background
    traffic, in a temporary state dir, with admin routes closed."""
    ops = ops or OpsOptions(traffic_rps=0)
    scratch = tempfile.TemporaryDirectory(prefix="opslab-target-") if ops.state_dir is None else None
    registry = CollectorRegistry()
    world = OpsWorld(ops, ops.state_dir or Path(scratch.name if scratch else "."), registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await world.start()
        try:
            yield
        finally:
            await world.stop()
            if scratch is not None:
                scratch.cleanup()

    app = create_service_app("target", lifespan=lifespan)
    state = TargetState(model=model or LatencyModel(), rng=np.random.default_rng(seed))
    app.state.sandbox = state
    app.state.ops = world
    requests = Counter("sandbox_requests_total", "Search requests by outcome", ["outcome"], registry=registry)
    latency = Histogram(
        "sandbox_request_latency_seconds",
        "Simulated search latency",
        registry=registry,
        buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0),
    )

    async def search(request: Request) -> Response:
        # A plain Starlette endpoint: FastAPI's parameter machinery would add its own time to every request.
        q = request.query_params.get("q", "")
        delay, failed = state.draw()
        start = time.perf_counter()
        await asyncio.sleep(max(0.0, delay - EARLY_S))
        took = time.perf_counter() - start
        latency.observe(took)
        requests.labels("error" if failed else "ok").inc()
        # The time spent in the handler, so a load generator can tell its own overhead from ours.
        headers = {SERVER_TIME_HEADER: f"{took * 1000:.3f}"}
        if failed:
            body = {"error": {"code": "injected", "message": "injected fault", "details": {}}}
            return JSONResponse(status_code=500, content=body, headers=headers)
        return JSONResponse({"q": q, "hits": [{"id": i} for i in range(3)]}, headers=headers)

    app.add_route("/api/search", search, methods=["GET"])
    add_experiment_routes(app, state)
    add_ops_routes(app, world, ops.token)

    @app.get("/api/flags")
    def get_flags() -> dict[str, JsonValue]:
        return state.flags.model_dump()

    @app.post("/api/flags")
    def set_flags(patch: dict[str, JsonValue]) -> dict[str, JsonValue]:
        """Lay ``patch`` over the current flags, section by section; a bad value is a 422 naming it."""
        state.flags = state.flags.merged(patch)
        return state.flags.model_dump()

    @app.get("/api/lab/config")
    def lab_config() -> dict[str, JsonValue]:
        health: dict[str, JsonValue] = {name: {"ok": ok} for name, ok in state.health.items()}
        return {"ok": state.healthy(), "health": health, "flags": state.flags.model_dump()}

    @app.post("/api/sandbox/health")
    def set_health(health: dict[str, bool]) -> dict[str, JsonValue]:
        """``{"qdrant": false}`` makes a dependency unhealthy (the canary's health gate then blocks)."""
        state.health = {**state.health, **health}
        return {"health": dict(state.health)}

    @app.post("/api/sandbox/faults")
    def set_faults(faults: Faults) -> dict[str, JsonValue]:
        """Inject errors (``error_rate``, 0..1) and slow every request down (``latency_factor``)."""
        state.faults = faults
        return faults.model_dump()

    @app.get("/api/sandbox/model")
    def describe_model() -> dict[str, JsonValue]:
        """The configured median and p95 at the current flags and faults."""
        return state.describe()

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
