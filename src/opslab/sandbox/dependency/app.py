"""The pricing service the target calls on every order (``GET /price?item=``). ``POST /admin/crash``
answers, then ends the process: an outage only a restart (the action server's ``restart-dependency``)
repairs, since nothing restarts a sandbox child by itself."""

from __future__ import annotations

import asyncio
import hashlib
import os

from fastapi import BackgroundTasks, FastAPI, Query
from pydantic import JsonValue

from opslab.sandbox.app import admin_guard, create_service_app, log

CRASH_DELAY_S = 0.05  # long enough for the answer to leave, short enough to look like a crash


def price_of(item: str) -> float:
    """A stable price per item (the same on every run and every process)."""
    digest = hashlib.sha256(item.encode()).digest()
    return round(5.0 + int.from_bytes(digest[:4], "big") % 9500 / 100, 2)


def create_dependency_app(*, token: str | None = None) -> FastAPI:
    app = create_service_app("dependency")

    @app.get("/price")
    def price(item: str = Query(min_length=1, max_length=200)) -> dict[str, JsonValue]:
        return {"item": item, "price": price_of(item)}

    async def crash() -> None:
        await asyncio.sleep(CRASH_DELAY_S)
        log.error("pricing service crashing on request (POST /admin/crash)")
        os._exit(70)

    @app.post("/admin/crash", dependencies=[admin_guard(token)])
    def crash_now(tasks: BackgroundTasks) -> dict[str, JsonValue]:
        tasks.add_task(crash)
        return {"crashing": True, "pid": os.getpid()}

    return app
