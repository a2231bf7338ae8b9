"""The target's operational routes: ``/api/v1/*`` (what any monitoring reads, no auth) and ``/admin/*``
(``X-Sandbox-Token``, for the chaos and action servers only). Shapes: docs/responder-contract.md.

An ``/admin/*`` request is judged by its token before its body is parsed: without the token it is a 401
(a wrong one a 403), whatever its body, never a 422 that would tell a stranger what the route expects.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Query, Request, Response, params
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from opslab.errors import InvalidInput
from opslab.sandbox.app import TOKEN_HEADER, admin_guard
from opslab.sandbox.target.ops import OpsWorld
from opslab.sandbox.target.release import Version


class Switch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class MemoryLeakSwitch(Switch):
    mb_per_s: float = Field(default=40.0, ge=1, le=200)


class SpikeSwitch(Switch):
    multiplier: float = Field(default=4.0, ge=1, le=20)


class DeployBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Version


class FlagsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new_ranking: bool


class ResizeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=1, le=50)


def parse_since(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        parsed = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput.for_field("since", f"not an ISO 8601 timestamp: {since!r}") from None
    if parsed.tzinfo is None:
        raise InvalidInput.for_field("since", "needs a time zone (e.g. 2024-01-01T00:00:00Z)")
    return parsed


def token_first(guard: params.Depends) -> type[APIRoute]:
    """A route class running ``guard``'s header check before the route's handler, which parses the body
    (FastAPI reads and decodes the body before it solves any dependency, the guard included)."""
    if guard.dependency is None:
        raise TypeError("token_first needs a guard with its dependency (admin_guard's)")
    check: Callable[..., object] = guard.dependency

    class TokenFirst(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def checked_first(request: Request) -> Response:
                check(request.headers.get(TOKEN_HEADER))
                return await handler(request)

            return checked_first

    return TokenFirst


def add_ops_routes(
    app: FastAPI,
    world: OpsWorld,
    token: str | None,
    experiment: Callable[[], dict[str, JsonValue] | None] = lambda: None,
) -> None:
    """``experiment()``: the experiment the target runs on itself now, announced in its health."""
    Admin = admin_guard(token)
    # The guard stays a dependency too, so the OpenAPI document names the header the routes take.
    admin = APIRouter(route_class=token_first(Admin), dependencies=[Admin])

    @app.get("/api/v1/orders")
    async def orders() -> JSONResponse:
        status, body = await world.serve_orders()
        return JSONResponse(status_code=status, content=body)

    @app.get("/api/v1/health")
    async def health() -> dict[str, JsonValue]:
        body = await world.health()
        running = experiment()
        return {**body, "experiment": running} if running else body

    @app.get("/api/v1/metrics")
    def metrics() -> dict[str, JsonValue]:
        return world.metrics()

    @app.get("/api/v1/pool/status")
    def pool_status() -> dict[str, JsonValue]:
        return world.pool_status().model_dump()

    @app.get("/api/v1/logs")
    def logs(
        since: Annotated[str | None, Query()] = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> dict[str, JsonValue]:
        lines = world.logs.read(since=parse_since(since), limit=limit)
        return {"logs": [line.model_dump(mode="json") for line in lines]}

    @app.get("/api/v1/flags")
    def flags() -> dict[str, JsonValue]:
        return {"new_ranking": world.release.flags.new_ranking}

    @admin.post("/admin/faults/db_pool_leak")
    def db_pool_leak(body: Switch) -> dict[str, JsonValue]:
        world.leak_connections = body.enabled
        world.logs.write("INFO", f"fault db_pool_leak {'on' if body.enabled else 'off'}")
        return {"db_pool_leak": body.enabled}

    @admin.post("/admin/faults/memory_leak")
    def memory_leak(body: MemoryLeakSwitch) -> dict[str, JsonValue]:
        world.memory.set(enabled=body.enabled, mb_per_s=body.mb_per_s)
        world.logs.write(
            "INFO", f"fault memory_leak {'on' if body.enabled else 'off'} ({body.mb_per_s:g} MB/s)"
        )
        return {"enabled": body.enabled, "mb_per_s": body.mb_per_s}

    @admin.post("/admin/faults/traffic_spike")
    def traffic_spike(body: SpikeSwitch) -> dict[str, JsonValue]:
        world.spike_multiplier = body.multiplier if body.enabled else None
        world.logs.write("INFO", f"traffic x{body.multiplier:g} {'on' if body.enabled else 'off'}")
        return {"enabled": body.enabled, "multiplier": body.multiplier}

    @admin.post("/admin/deploy")
    def deploy(body: DeployBody) -> dict[str, JsonValue]:
        d = world.release.roll_out(body.version)
        world.logs.write("INFO", f"deployed release {d.version} (previous {d.previous})")
        return d.model_dump(exclude={"schema_version"})

    @admin.post("/admin/deploy/rollback")
    def rollback() -> dict[str, JsonValue]:
        d = world.release.roll_back()
        world.logs.write("INFO", f"rolled back to release {d.version} (from {d.previous})")
        return d.model_dump(exclude={"schema_version"})

    @admin.post("/admin/flags")
    def set_flags(body: FlagsBody) -> dict[str, JsonValue]:
        flags = world.release.set_flags(new_ranking=body.new_ranking)
        world.logs.write("INFO", f"flag new_ranking {'on' if flags.new_ranking else 'off'}")
        return {"new_ranking": flags.new_ranking}

    @admin.post("/admin/pool/recycle")
    async def recycle() -> dict[str, JsonValue]:
        released = await anyio.to_thread.run_sync(world.db.recycle)
        world.logs.write("INFO", f"connection pool recycled: {released} leaked connections released")
        return {"released": released}

    @admin.post("/admin/pool/resize")
    async def resize(body: ResizeBody) -> dict[str, JsonValue]:
        await anyio.to_thread.run_sync(world.db.resize, body.size)
        world.logs.write("INFO", f"connection pool resized to {body.size}")
        return world.pool_status().model_dump()

    @admin.get("/admin/state")
    def state() -> dict[str, JsonValue]:
        return world.state()

    app.include_router(admin)
