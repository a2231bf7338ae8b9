"""Service identity and health."""

from __future__ import annotations

from typing import Literal

from anyio import to_thread
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from opslab import __version__
from opslab.api.deps import RuntimeDep

router = APIRouter(tags=["service"])


class ServiceInfo(BaseModel):
    status: Literal["ok"] = "ok"
    service: Literal["opslab"] = "opslab"
    version: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    database: str


@router.get("/")
def root() -> ServiceInfo:
    return ServiceInfo(version=__version__)


@router.get("/healthz")
async def health(runtime: RuntimeDep) -> Health:
    """The service answers and reaches its database."""

    def ping() -> None:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    await to_thread.run_sync(ping)
    return Health(database=runtime.engine.dialect.name)
