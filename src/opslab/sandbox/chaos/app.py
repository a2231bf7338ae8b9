"""The chaos server: breaks the world on request (``POST /api/v1/break/{fault}``), for a human, a drill or
a test, and stops a break (``POST /api/v1/break/{fault}/{id}/stop``) or every active break of a fault
(``POST /api/v1/break/{fault}/stop``: an experiment's rollback, which does not know its breaks' ids). It
is never given to the responder: endpoints.json does not name it. Every route but ``/healthz`` needs
``Authorization: Bearer <chaos-token>`` (``<data dir>/sandbox/chaos-token``): whoever can reach the port
must not be able to break the world.

A break's body is JSON (``{"duration_s", "params"}``) or, as chaostoolkit's HTTP provider sends its
``arguments`` by default, a form with the same fields."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import parse_qsl

import anyio.to_thread
from fastapi import Depends, FastAPI, Header, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from opslab.errors import InvalidInput, invalid_from_pydantic
from opslab.sandbox.admin import AdminClient
from opslab.sandbox.app import create_service_app
from opslab.sandbox.chaos.breaks import FAULT_NAMES, Breaks
from opslab.sandbox.guard import bearer_caller, parse_json_object


class BreakRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration_s: float | None = Field(default=None, gt=0, le=86400)
    params: dict[str, JsonValue] = Field(default_factory=dict)


def create_chaos_app(*, target_url: str, dependency_url: str, token: str, chaos_token: str) -> FastAPI:
    """``token``: the target's and the dependency's admin token; ``chaos_token``: this server's own."""
    app = create_service_app("chaos")

    def bearer(authorization: Annotated[str | None, Header()] = None) -> None:
        bearer_caller(authorization, chaos_token, server="chaos server", token_file="sandbox/chaos-token")

    app.router.dependencies.append(Depends(bearer))
    breaks = Breaks(
        AdminClient(target_url, token, part="target"), AdminClient(dependency_url, token, part="dependency")
    )
    app.state.breaks = breaks

    @app.get("/api/v1/faults")
    def faults() -> dict[str, JsonValue]:
        return {"faults": list(FAULT_NAMES)}

    @app.post("/api/v1/break/{fault}", status_code=201)
    async def start(fault: str, request: Request) -> dict[str, JsonValue]:
        req = break_request(await request.body(), request.headers.get("content-type", ""))
        brk = await anyio.to_thread.run_sync(
            lambda: breaks.start(fault, duration_s=req.duration_s, params=req.params)
        )
        return brk.model_dump(mode="json")

    @app.post("/api/v1/break/{fault}/stop")
    async def stop_fault(fault: str) -> dict[str, JsonValue]:
        """Stop every active break of ``fault`` (an experiment's rollback); ``stopped`` lists them."""
        stopped = await anyio.to_thread.run_sync(lambda: breaks.stop_fault(fault))
        return {"stopped": [b.model_dump(mode="json") for b in stopped]}

    @app.post("/api/v1/break/{fault}/{break_id}/stop")
    async def stop(fault: str, break_id: str) -> dict[str, JsonValue]:
        brk = await anyio.to_thread.run_sync(lambda: breaks.stop(break_id, fault=fault))
        return brk.model_dump(mode="json")

    @app.get("/api/v1/breaks")
    def list_breaks() -> dict[str, JsonValue]:
        return {"breaks": [b.model_dump(mode="json") for b in breaks.list()]}

    return app


def break_request(body: bytes, content_type: str) -> BreakRequest:
    """A break's body: JSON, or a form (``duration_s=6``; ``params`` as a JSON text); 422 naming the field."""
    data: dict[str, Any]
    if "application/x-www-form-urlencoded" in content_type:
        data = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
        if "params" in data:
            try:
                data["params"] = json.loads(data["params"])
            except ValueError:
                raise InvalidInput.for_field("params", "a form's params must be a JSON object") from None
    else:
        data = parse_json_object(body)
    try:
        return BreakRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_pydantic(list(exc.errors(include_url=False))) from None
