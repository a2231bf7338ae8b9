"""The sandbox target: a search-like service whose latency and errors follow its flags, seeded and
analytically known, so a flag change has a known effect on p95.

Latency is log-normal: median ``base_median_ms × m(flags) × latency_factor``, shape ``sigma``; its p95 is
``median × exp(1.6449 σ)``. The flags' multipliers ``m``: flow policy ``aimd`` 0.90 (``static`` 1.0);
routing ``rules`` 0.85 (``default`` 1.0); ``topk_threshold`` adds 0.5% per step above 32 (saves below);
``target_p95`` under 1,000 ms tightens admission, another 0.95. Errors are injected at ``error_rate``.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opslab.canary.loadgen import SERVER_TIME_HEADER
from opslab.errors import invalid_from_pydantic
from opslab.sandbox.lab import add_lab_routes

Z95 = 1.6448536269514722


class ControlFlags(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow_policy: Literal["aimd", "static"] = "static"
    target_p95: float = Field(default=1200.0, gt=0)


class RoutingFlags(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["rules", "default"] = "default"
    topk_threshold: int = Field(default=32, ge=1, le=1024)


class Flags(BaseModel):
    model_config = ConfigDict(extra="forbid")
    control: ControlFlags = Field(default_factory=ControlFlags)
    routing: RoutingFlags = Field(default_factory=RoutingFlags)


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_factor: float = Field(default=1.0, gt=0.0, le=100.0)


class LatencyModel(BaseModel):
    base_median_ms: float = 20.0
    sigma: float = 0.35

    def multiplier(self, flags: Flags) -> float:
        m = 0.90 if flags.control.flow_policy == "aimd" else 1.0
        m *= 0.85 if flags.routing.mode == "rules" else 1.0
        m *= 1.0 + 0.005 * (flags.routing.topk_threshold - 32)
        m *= 0.95 if flags.control.target_p95 < 1000 else 1.0
        return max(m, 0.05)

    def median_ms(self, flags: Flags, faults: Faults) -> float:
        return self.base_median_ms * self.multiplier(flags) * faults.latency_factor

    def p95_ms(self, flags: Flags, faults: Faults) -> float:
        return self.median_ms(flags, faults) * math.exp(Z95 * self.sigma)


def create_target_app(*, seed: int = 42, model: LatencyModel | None = None) -> FastAPI:
    app = FastAPI(title="opslab sandbox target")
    state: dict[str, Any] = {
        "flags": Flags(),
        "faults": Faults(),
        "health": {"redis": True, "qdrant": True},
        "rng": np.random.default_rng(seed),
        "model": model or LatencyModel(),
    }
    registry = CollectorRegistry()
    requests = Counter("sandbox_requests_total", "Search requests by outcome", ["outcome"], registry=registry)
    latency = Histogram(
        "sandbox_request_latency_seconds",
        "Simulated search latency",
        registry=registry,
        buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0),
    )
    app.state.sandbox = state
    add_lab_routes(app, state)

    def bad(exc: ValidationError) -> JSONResponse:
        err = invalid_from_pydantic(list(exc.errors(include_url=False)))
        return JSONResponse(status_code=422, content={"error": err.to_dict()})

    async def search(request: Request) -> Response:
        # A plain Starlette endpoint: FastAPI's parameter machinery would add its own time to every request.
        q = request.query_params.get("q", "")
        flags, faults, m = state["flags"], state["faults"], state["model"]
        rng: np.random.Generator = state["rng"]
        delay = float(rng.lognormal(math.log(m.median_ms(flags, faults)), m.sigma)) / 1000
        failed = bool(rng.random() < faults.error_rate)
        start = time.perf_counter()
        # Event-loop timers fire on whole milliseconds, late by up to one: aim half a tick early so the
        # served latency follows the model on average (see GET /api/sandbox/model).
        await asyncio.sleep(max(0.0, delay - 0.0005))
        took = time.perf_counter() - start
        latency.observe(took)
        requests.labels("error" if failed else "ok").inc()
        # The time spent in the handler, so a load generator can tell its own overhead from ours.
        headers = {SERVER_TIME_HEADER: f"{took * 1000:.3f}"}
        if failed:
            return JSONResponse(
                status_code=500,
                content={"error": {"code": "injected", "message": "injected fault"}},
                headers=headers,
            )
        return JSONResponse({"q": q, "hits": [{"id": i} for i in range(3)]}, headers=headers)

    app.add_route("/api/search", search, methods=["GET"])

    @app.get("/api/flags")
    def get_flags() -> dict[str, Any]:
        flags: Flags = state["flags"]
        return flags.model_dump()

    @app.post("/api/flags")
    async def set_flags(request: Request) -> Any:
        body = await request.json()
        merged = state["flags"].model_dump()
        for section in ("control", "routing"):
            if isinstance(body, dict) and isinstance(body.get(section), dict):
                merged[section].update(body[section])
        try:
            state["flags"] = Flags.model_validate(
                {**merged, **{k: v for k, v in body.items() if k not in ("control", "routing")}}
            )
        except ValidationError as exc:
            return bad(exc)
        return state["flags"].model_dump()

    @app.get("/api/lab/config")
    def lab_config() -> dict[str, Any]:
        health = {name: {"ok": ok} for name, ok in state["health"].items()}
        return {"ok": all(state["health"].values()), "health": health, "flags": state["flags"].model_dump()}

    @app.post("/api/sandbox/health")
    async def set_health(request: Request) -> dict[str, Any]:
        body = await request.json()
        for name, ok in (body or {}).items():
            state["health"][str(name)] = bool(ok)
        return {"health": state["health"]}

    @app.post("/api/sandbox/faults")
    async def set_faults(request: Request) -> Any:
        try:
            state["faults"] = Faults.model_validate(await request.json())
        except ValidationError as exc:
            return bad(exc)
        return state["faults"].model_dump()

    @app.get("/api/sandbox/model")
    def describe_model() -> dict[str, Any]:
        flags, faults, m = state["flags"], state["faults"], state["model"]
        return {
            "flags": flags.model_dump(),
            "faults": faults.model_dump(),
            "median_ms": m.median_ms(flags, faults),
            "p95_ms": m.p95_ms(flags, faults),
            "sigma": m.sigma,
            "multiplier": m.multiplier(flags),
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
