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
from typing import Any, TypeVar

import aiohttp

from opslab.canary.model import Measurement
from opslab.wire import SERVER_TIME_HEADER

T = TypeVar("T")
# Event-loop timers fire on whole milliseconds, late by up to one: aim half a tick early, so sends are
# on schedule on average rather than half a millisecond late every time.
EARLY_S = 0.0005


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
) -> Measurement:
    n = max(1, int(qps * seconds))
    interval = 1.0 / qps
    latencies: list[float] = []
    overheads: list[float] = []
    sends: list[float] = []
    errors = 0
    max_lag_ms = 0.0
    connector = aiohttp.TCPConnector(limit=_connection_limit(qps, timeout_s), keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(scheduled: float, keep: bool) -> None:
            nonlocal errors, max_lag_ms
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
            max_lag_ms = max(max_lag_ms, (sent_at - scheduled) * 1000)
            if ok:
                latencies.append(latency)
                if server_ms is not None:
                    overheads.append(latency - server_ms)
            else:
                errors += 1

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
    duration_s = 1e-9
    if kept > 1 and max(sends) > min(sends):
        duration_s = (max(sends) - min(sends)) * kept / (kept - 1)
    return Measurement(
        arm=arm,
        latencies_ms=latencies,
        errors=errors,
        sent=kept,
        duration_s=duration_s,
        overhead_ms=overheads,
        max_send_lag_ms=max_lag_ms,
    )


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(coro)
    return uvloop.run(coro)


def measure(
    url: str, *, arm: str, qps: float, seconds: float, warmup_s: float = 0.0, timeout_s: float = 5.0
) -> Measurement:
    """One arm's window of open-loop GETs of ``url`` at ``qps`` for ``seconds`` (the first ``warmup_s`` are
    sent but not counted)."""
    # A cyclic-GC pass over thousands of live tasks stalls the schedule for tens of milliseconds; a
    # window's garbage is reference-counted away, and the collector runs again right after.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(_window(url, arm=arm, qps=qps, seconds=seconds, warmup_s=warmup_s, timeout_s=timeout_s))
    finally:
        if enabled:
            gc.enable()
