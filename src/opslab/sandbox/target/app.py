"""The sandbox target: a search-like service whose latency and errors follow its flags, seeded and
analytically known (see ``model.py``), so a flag change has a known effect on p95.

Routes: ``GET /api/search``; ``GET|POST /api/flags``; ``GET /api/lab/config`` (dependency health, the
seed's health gate); ``GET /metrics``; ``POST /api/lab/run`` + ``GET /api/lab/report`` (its own
experiment); ``GET|POST /ops/flags`` and ``GET /ops/lab/report``, the seed's paths for the same two, answering
exactly as they do; and for experiments on it ``POST /api/sandbox/health``, ``POST /api/sandbox/faults``,
``GET /api/sandbox/model``. The operational side the responder works on (``/api/v1/*`` orders, health,
metrics, pool, logs, flags; ``/admin/*`` faults, deploys, pool) lives in ``ops.py`` and ``ops_routes.py``.

Metrics for a canary that reads Prometheus: ``sandbox_requests_total{outcome="ok"|"error"}`` (both series
exist from the start, so a window's error rate is 0, not "no data") and the latency histogram
``sandbox_request_latency_seconds``.
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
from fastapi.routing import APIRoute
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
# histogram_quantile interpolates linearly inside a bucket: 2.5 ms steps through the default model's range
# (median 20 ms, p95 ~36 ms) keep a p95 read from Prometheus within a few percent; 10-20 ms steps did not.
LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    *(round(0.005 + 0.0025 * i, 4) for i in range(23)),  # 5 .. 60 ms
    *(0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0),
)


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
        buckets=LATENCY_BUCKETS_S,
    )
    # Both outcomes from the first scrape: a series born mid-window loses its first increments to rate(),
    # and an error rate over a window without errors must read 0, not no data.
    for outcome in ("ok", "error"):
        requests.labels(outcome)

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
    add_ops_routes(app, world, ops.token, experiment=lambda: state.experiment)

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

    # The seed served these under /ops: plans and scripts written for it work here unchanged.
    for method, path, alias in (
        ("GET", "/api/flags", "/ops/flags"),
        ("POST", "/api/flags", "/ops/flags"),
        ("GET", "/api/lab/report", "/ops/lab/report"),
    ):
        add_alias(app, method, path, alias)
    return app


def add_alias(app: FastAPI, method: str, path: str, alias: str) -> None:
    """Serve ``method alias`` by the endpoint of ``method path``, with the same parameters and responses."""
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            app.add_api_route(
                alias,
                route.endpoint,
                methods=[method],
                status_code=route.status_code,
                response_model=route.response_model,
                response_class=route.response_class,
                dependencies=route.dependencies,
                summary=route.summary,
                description=route.description,
            )
            return
    raise LookupError(f"no {method} {path} route to alias as {alias}")
