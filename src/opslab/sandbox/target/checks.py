"""The target's health checks, each a real probe of what it depends on: its database (a query through
the pool), its dependency (a timed call), its memory (resident set against its limit) and its disk (a
write probe in its state dir); and what it measures of its host (CPU, load, available memory) and of
itself (its CPU share), so a monitor can tell a slow host from a sick process."""

from __future__ import annotations

import os
import time

import httpx
from pydantic import BaseModel, JsonValue
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from opslab.sandbox.hoststat import CpuMeter
from opslab.sandbox.target.pool import OrdersDb


class CheckResult(BaseModel):
    ok: bool
    detail: str
    latency_ms: float | None = None

    def wire(self) -> dict[str, JsonValue]:
        return self.model_dump(exclude_none=True)


def check_db(db: OrdersDb) -> CheckResult:
    started = time.perf_counter()
    try:
        with db.checkout() as conn:
            n = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
    except sa_exc.SQLAlchemyError as exc:
        return CheckResult(ok=False, detail=str(exc).split(" (Background")[0][:300])
    took = (time.perf_counter() - started) * 1000
    detail = f"{n} orders; pool {db.status(0).checked_out}/{db.size} checked out"
    return CheckResult(ok=True, detail=detail, latency_ms=round(took, 1))


async def check_dependency(http: httpx.AsyncClient, base_url: str) -> CheckResult:
    url = f"{base_url}/healthz"
    started = time.perf_counter()
    try:
        (await http.get(url)).raise_for_status()
    except httpx.HTTPError as exc:
        return CheckResult(
            ok=False, detail=f"pricing service unreachable at {url}: {type(exc).__name__}: {exc}"
        )
    took = (time.perf_counter() - started) * 1000
    return CheckResult(
        ok=True, detail=f"pricing service up at {base_url} ({took:.0f} ms)", latency_ms=round(took, 1)
    )


def resources(meter: CpuMeter) -> dict[str, JsonValue]:
    """The host's CPU, load and memory, and this process's CPU share (``/api/v1/metrics``)."""
    host = meter.host()
    me = meter.process(os.getpid())
    return {"host": host.model_dump(), "process_cpu_pct": me.cpu_pct}
