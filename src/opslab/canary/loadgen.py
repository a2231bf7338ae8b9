"""Open-loop load: requests leave at their scheduled times whatever is outstanding, and latency counts
from the scheduled time, so a slow server cannot hide its queueing (no coordinated omission).

The client is aiohttp on uvloop (plain asyncio where uvloop is missing): httpx's connection pool cost
about 5 ms of CPU per request at 1,000 QPS here, so the generator fell behind its own schedule; see
`bench/canary.py`. A target that reports how long it worked on a request (``X-Server-Time-Ms``) lets the
window also record the client's own overhead.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

SERVER_TIME_HEADER = "X-Server-Time-Ms"
T = TypeVar("T")
# Event-loop timers fire on whole milliseconds, late by up to one: aim half a tick early, so sends are
# on schedule on average rather than half a millisecond late every time.
EARLY_S = 0.0005


@dataclass
class Window:
    arm: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    sent: int = 0
    duration_s: float = 0.0
    # Per request, measured latency minus the server's own time, when the target reports it.
    overhead_ms: list[float] = field(default_factory=list)
    # How far behind its schedule the generator sent (0 for a generator that keeps up).
    max_send_lag_ms: float = 0.0

    @property
    def achieved_qps(self) -> float:
        return self.sent / self.duration_s if self.duration_s else 0.0

    @property
    def error_rate_pct(self) -> float:
        return 100.0 * self.errors / self.sent if self.sent else 0.0


def _connection_limit(qps: float, timeout_s: float) -> int:
    """Enough connections for everything that can be outstanding, within the open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = max(64, (soft if soft != resource.RLIM_INFINITY else 65536) // 2)
    return max(64, min(int(qps * timeout_s) + 1, room))


async def _window(
    url: str,
    *,
    arm: str,
    qps: float,
    seconds: float,
    warmup_s: float,
    timeout_s: float,
) -> Window:
    n = max(1, int(qps * seconds))
    interval = 1.0 / qps
    out = Window(arm=arm)
    sends: list[float] = []
    connector = aiohttp.TCPConnector(limit=_connection_limit(qps, timeout_s), keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(scheduled: float, keep: bool) -> None:
            sent_at = time.perf_counter()
            # Late (the generator fell behind): count from the schedule, as open-loop load must. Early
            # (timer wake-ups are aimed half a tick ahead): count from the actual send.
            origin = min(scheduled, sent_at)
            ok, server_ms = True, None
            try:
                async with session.get(url) as r:
                    await r.read()
                    ok = r.status < 500
                    header = r.headers.get(SERVER_TIME_HEADER)
                    server_ms = float(header) if header else None
            except (aiohttp.ClientError, TimeoutError, ValueError):
                ok = False
            latency = (time.perf_counter() - origin) * 1000
            if not keep:
                return
            sends.append(sent_at)
            out.sent += 1
            out.max_send_lag_ms = max(out.max_send_lag_ms, (sent_at - scheduled) * 1000, 0.0)
            if ok:
                out.latencies_ms.append(latency)
                if server_ms is not None:
                    out.overhead_ms.append(latency - server_ms)
            else:
                out.errors += 1

        start = time.perf_counter() + 0.01
        tasks = []
        for i in range(n):
            scheduled = start + i * interval
            delay = scheduled - EARLY_S - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled, keep=i * interval >= warmup_s)))
        await asyncio.gather(*tasks)
    # Achieved rate from the actual send times: a client that falls behind its schedule shows it here.
    kept = len(sends)
    if kept > 1:
        first, last = min(sends), max(sends)
        out.duration_s = (last - first) * kept / (kept - 1) if last > first else 1e-9
    else:
        out.duration_s = 1e-9
    return out


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_window(
    url: str, *, arm: str, qps: float, seconds: float, warmup_s: float = 0.0, timeout_s: float = 5.0
) -> Window:
    """One arm's window at ``qps`` for ``seconds`` (the first ``warmup_s`` are sent but not counted)."""
    # A cyclic-GC pass over thousands of live tasks stalls the schedule for tens of milliseconds; a
    # window's garbage is reference-counted away, and the collector runs again right after.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(_window(url, arm=arm, qps=qps, seconds=seconds, warmup_s=warmup_s, timeout_s=timeout_s))
    finally:
        if enabled:
            gc.enable()
