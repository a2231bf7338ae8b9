"""The chaos server: breaks the world on request (``POST /api/v1/break/{fault}``), for a human, a drill or
a test. It is never given to the responder: endpoints.json does not name it."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import Body, FastAPI
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from opslab.sandbox.admin import AdminClient
from opslab.sandbox.app import create_service_app
from opslab.sandbox.chaos.breaks import FAULT_NAMES, Breaks


class BreakRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    duration_s: float | None = Field(default=None, gt=0, le=86400)
    params: dict[str, JsonValue] = Field(default_factory=dict)


def create_chaos_app(*, target_url: str, dependency_url: str, token: str) -> FastAPI:
    app = create_service_app("chaos")
    breaks = Breaks(
        AdminClient(target_url, token, part="target"), AdminClient(dependency_url, token, part="dependency")
    )
    app.state.breaks = breaks

    @app.get("/api/v1/faults")
    def faults() -> dict[str, JsonValue]:
        return {"faults": list(FAULT_NAMES)}

    @app.post("/api/v1/break/{fault}", status_code=201)
    async def start(fault: str, body: Annotated[BreakRequest | None, Body()] = None) -> dict[str, JsonValue]:
        req = body or BreakRequest()
        brk = await anyio.to_thread.run_sync(
            lambda: breaks.start(fault, duration_s=req.duration_s, params=req.params)
        )
        return brk.model_dump(mode="json")

    @app.post("/api/v1/break/{fault}/{break_id}/stop")
    async def stop(fault: str, break_id: str) -> dict[str, JsonValue]:
        brk = await anyio.to_thread.run_sync(lambda: breaks.stop(break_id, fault=fault))
        return brk.model_dump(mode="json")

    @app.get("/api/v1/breaks")
    def list_breaks() -> dict[str, JsonValue]:
        return {"breaks": [b.model_dump(mode="json") for b in breaks.list()]}

    return app
