"""Service identity and health."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text

from opslab import __version__
from opslab.api.deps import RuntimeDep

router = APIRouter(tags=["service"])


@router.get("/")
def root() -> dict[str, str]:
    return {"status": "ok", "service": "opslab", "version": __version__}


@router.get("/healthz")
async def health(runtime: RuntimeDep) -> dict[str, object]:
    def ping() -> None:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    await run_in_threadpool(ping)
    return {"status": "ok", "database": runtime.engine.dialect.name}
