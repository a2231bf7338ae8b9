"""The target's operational world behind ``/api/v1/*`` and ``/admin/*``: the orders work path, its faults,
its health and its metrics. Every symptom is produced by a real mechanism: a leaked ``QueuePool``
connection, a raised ``TypeError`` in release v2, an HTTP call to a dead dependency, resident memory
really allocated, a sleep in the slower ranking. Nothing here reports a number it did not measure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, Field, JsonValue
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from opslab.sandbox.hoststat import CpuMeter
from opslab.sandbox.target.checks import check_db, check_dependency, resources
from opslab.sandbox.target.journal import Journal
from opslab.sandbox.target.logbuf import Cause, LogBuffer, RequestWindow
from opslab.sandbox.target.memory import MB, MemoryLeak, rss_bytes
from opslab.sandbox.target.pool import ORDERS, OrdersDb, PoolStatus
from opslab.sandbox.target.release import Release

HealthStatus = Literal["healthy", "degraded", "unhealthy"]
RANKING_S = 0.4  # what the new ranking model costs a request: it re-scores every order
MAX_IN_FLIGHT = 400  # background requests at once, so a stuck target does not pile up tasks forever
DEPENDENCY_WAIT_S = 30.0  # at most, before the background traffic starts anyway


class OpsOptions(BaseModel):
    """How a target's operational side runs (``opslab sandbox target`` options)."""

    state_dir: Path | None = None
    dependency_url: str = "http://127.0.0.1:8101"
    token: str | None = None
    traffic_rps: float = Field(default=20.0, ge=0, le=1000)
    window_s: float = Field(default=5.0, gt=0, le=600)
    memory_headroom_mb: float = Field(default=150.0, gt=0)
    pool_size: int = Field(default=5, ge=1, le=50)
    pool_timeout_s: float = Field(default=0.5, gt=0)
    dependency_timeout_s: float = Field(default=1.0, gt=0)
    seed: int = 42


@dataclass(frozen=True)
class Order:
    id: int
    item: str
    amount: float
    discount: float | None


class OrderFailed(Exception):
    def __init__(self, status: int, code: str, message: str, cause: Cause) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.cause = status, code, message, cause


class OpsWorld:
    def __init__(self, options: OpsOptions, state_dir: Path, registry: CollectorRegistry) -> None:
        self.options = options
        state_dir.mkdir(parents=True, exist_ok=True)  # `opslab sandbox target` alone, in a fresh data dir
        self.journal = Journal(state_dir)
        self.cpu = CpuMeter()
        self.db = OrdersDb(state_dir / "orders.db", size=options.pool_size, timeout_s=options.pool_timeout_s)
        self.release = Release(state_dir)
        self.logs = LogBuffer()
        self.window = RequestWindow(options.window_s)
        self.memory = MemoryLeak()
        self.leak_connections = False
        self.spike_multiplier: float | None = None
        self.started = time.monotonic()
        self.memory_limit = rss_bytes() + int(options.memory_headroom_mb * MB)
        self._rng = random.Random(options.seed)
        self._http: httpx.AsyncClient | None = None
        self._db_threads: anyio.CapacityLimiter | None = None
        self._traffic: asyncio.Task[None] | None = None
        self._orders = Counter("sandbox_orders", "Order requests by HTTP status", ["code"], registry=registry)
        self._latency = Histogram(
            "sandbox_orders_latency_seconds",
            "Order request latency",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        Gauge(
            "sandbox_pool_checked_out", "Connections checked out of the pool", registry=registry
        ).set_function(lambda: self.db.status(0).checked_out)
        Gauge("sandbox_memory_rss_bytes", "Resident set size", registry=registry).set_function(rss_bytes)

    # -- lifecycle (the app's lifespan) -------------------------------------------------------------------

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=self.options.dependency_timeout_s)
        self._db_threads = anyio.CapacityLimiter(32)
        self._traffic = asyncio.create_task(self._background_traffic())
        self.logs.write("INFO", f"target started: release {self.release.version}, pid {os.getpid()}")

    async def stop(self) -> None:
        if self._traffic is not None:
            self._traffic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._traffic
        if self._http is not None:
            await self._http.aclose()
        self.memory.set(enabled=False, mb_per_s=self.memory.mb_per_s)
        self.db.close()

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 2)

    # -- the work path ------------------------------------------------------------------------------------

    async def serve_orders(self) -> tuple[int, dict[str, JsonValue]]:
        """One ``GET /api/v1/orders``: its status and body, recorded in the window and the metrics."""
        start = time.perf_counter()
        cause: Cause | None = None
        try:
            body = await self._orders_body()
            status = 200
        except OrderFailed as failed:
            status, cause = failed.status, failed.cause
            body = {"error": {"code": failed.code, "message": failed.message, "details": {}}}
        took = time.perf_counter() - start
        self.window.record(status, took * 1000, cause)
        self._orders.labels(str(status)).inc()
        self._latency.observe(took)
        return status, body

    async def _orders_body(self) -> dict[str, JsonValue]:
        rss = rss_bytes()
        if rss > self.memory_limit:
            message = f"MemoryError: rss {rss / MB:.0f} MB over the limit of {self.memory_limit / MB:.0f} MB"
            self.logs.write("ERROR", message)
            raise OrderFailed(503, "unavailable", message, "memory")
        order = await self._read_order(self._rng.randint(1, ORDERS))
        price = await self._price(order.item)
        if self.release.flags.new_ranking:
            await asyncio.sleep(RANKING_S)  # the slower ranking behind the new_ranking flag
        version = self.release.version
        try:
            rendered = render(order, price, version)
        except TypeError as exc:
            message = f"TypeError: {exc} while rendering order {order.id} (release {version})"
            self.logs.write("ERROR", message)
            raise OrderFailed(500, "operation_failed", message, "release") from None
        try:
            self.journal.append(f"{order.id} {order.item} {rendered['total']}")
        except OSError as exc:
            message = f"OSError: [Errno {exc.errno}] {exc.strerror}: cannot write the order journal"
            self.logs.write("ERROR", message)
            raise OrderFailed(507, "insufficient_storage", message, "disk") from None
        return {"orders": [rendered], "version": version}

    async def _read_order(self, order_id: int) -> Order:
        try:
            return await anyio.to_thread.run_sync(self._read_order_sync, order_id, limiter=self._db_threads)
        except sa_exc.TimeoutError as exc:
            message = f"DB_ERROR: {str(exc).split(' (Background')[0]}"
            self.logs.write("ERROR", message)
            raise OrderFailed(503, "unavailable", message, "pool_timeout") from None
        except sa_exc.OperationalError as exc:  # the database itself refuses (locked, unreadable)
            message = f"DB_ERROR: {str(exc).split(' (Background')[0].splitlines()[0]}"
            self.logs.write("ERROR", message)
            raise OrderFailed(503, "unavailable", message, "db_error") from None

    def _read_order_sync(self, order_id: int) -> Order:
        conn = self.db.checkout()
        try:
            row = conn.execute(
                text("SELECT id, item, amount, discount FROM orders WHERE id = :id"), {"id": order_id}
            ).one()
        except BaseException:
            conn.close()
            raise
        if self.leak_connections:
            self.db.leak(conn)  # the fault: the request never gives its connection back
        else:
            conn.close()
        return Order(id=row.id, item=row.item, amount=row.amount, discount=row.discount)

    async def _price(self, item: str) -> float:
        assert self._http is not None, "the target's lifespan has not started"
        try:
            r = await self._http.get(f"{self.options.dependency_url}/price", params={"item": item})
            r.raise_for_status()
            return float(r.json()["price"])
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            message = f"DEPENDENCY_ERROR: pricing service unreachable: {type(exc).__name__}: {exc}"
            self.logs.write("ERROR", message)
            raise OrderFailed(502, "bad_gateway", message, "dependency") from None

    async def _background_traffic(self) -> None:
        """The target's own users: ``serve_orders`` at ``traffic_rps`` (times a spike), never awaited in
        line, so a slow request does not slow the arrivals (open loop)."""
        loop = asyncio.get_running_loop()
        # Users arrive once the service is up, pricing included: started together, the dependency may
        # answer a moment after the target, and those first orders would read as an incident.
        deadline = loop.time() + DEPENDENCY_WAIT_S
        assert self._http is not None, "the target's lifespan has not started"
        while (
            not (await check_dependency(self._http, self.options.dependency_url)).ok
            and loop.time() < deadline
        ):
            await asyncio.sleep(0.1)
        in_flight: set[asyncio.Task[tuple[int, dict[str, JsonValue]]]] = set()
        next_at = loop.time()
        while True:
            rate = self.options.traffic_rps * (self.spike_multiplier or 1.0)
            if rate <= 0:
                await asyncio.sleep(0.2)
                next_at = loop.time()
                continue
            next_at = max(next_at + 1.0 / rate, loop.time() - 1.0)  # never burst to catch up a lost second
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if len(in_flight) < MAX_IN_FLIGHT:
                task = asyncio.create_task(self.serve_orders())
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)

    # -- what monitoring reads ----------------------------------------------------------------------------

    def pool_status(self) -> PoolStatus:
        return self.db.status(self.window.stats().wait_timeouts)

    async def health(self) -> dict[str, JsonValue]:
        db = await anyio.to_thread.run_sync(check_db, self.db, limiter=self._db_threads)
        assert self._http is not None, "the target's lifespan has not started"
        dep = await check_dependency(self._http, self.options.dependency_url)
        disk_ok, disk_detail = await anyio.to_thread.run_sync(self.journal.check)
        rss = rss_bytes()
        mem_ok = rss <= self.memory_limit
        stats, pool = self.window.stats(), self.pool_status()
        status: HealthStatus = "healthy"
        if not (db.ok and dep.ok and mem_ok and disk_ok):
            status = "unhealthy"
        elif pool.utilization >= 0.8 or stats.error_rate > 5.0:
            status = "degraded"
        return {
            "status": status,
            "version": self.release.version,
            "uptime_s": self.uptime_s,
            "pid": os.getpid(),
            "checks": {
                "database": db.wire(),
                "dependency": dep.wire(),
                "memory": {
                    "ok": mem_ok,
                    "detail": f"rss {rss / MB:.0f} MB of {self.memory_limit / MB:.0f} MB",
                },
                "disk": {"ok": disk_ok, "detail": disk_detail},
            },
        }

    def metrics(self) -> dict[str, JsonValue]:
        stats = self.window.stats().model_dump(exclude={"wait_timeouts"})
        return {
            **stats,
            "memory_rss_mb": round(rss_bytes() / MB, 1),
            "memory_limit_mb": round(self.memory_limit / MB, 1),
            "version": self.release.version,
            "uptime_s": self.uptime_s,
            "flags": {"new_ranking": self.release.flags.new_ranking},
            **resources(self.cpu),
        }

    def state(self) -> dict[str, JsonValue]:
        return {
            "faults": {
                "db_pool_leak": self.leak_connections,
                "memory_leak": {
                    "enabled": self.memory.enabled,
                    "mb_per_s": self.memory.mb_per_s,
                    "leaked_mb": round(self.memory.leaked_mb, 1),
                },
                "traffic_spike": {
                    "enabled": self.spike_multiplier is not None,
                    "multiplier": self.spike_multiplier or 1.0,
                },
            },
            "version": self.release.version,
            "previous_version": self.release.deploy.previous,
            "flags": {"new_ranking": self.release.flags.new_ranking},
            "pool": self.pool_status().model_dump(),
            "pid": os.getpid(),
            "uptime_s": self.uptime_s,
            "traffic_rps": self.options.traffic_rps,
        }


def render(order: Order, price: float, version: str) -> dict[str, JsonValue]:
    """An order as the page shows it. Release v2's renderer assumes every order has a discount."""
    if version == "v2":
        total = round(price * (1 - order.discount), 2)  # type: ignore[operator]  # the v2 bug, on purpose
    else:
        total = round(price * (1 - (order.discount or 0.0)), 2)
    return {"id": order.id, "item": order.item, "amount": order.amount, "price": price, "total": total}
