"""Open-loop load: requests leave at their scheduled times whatever is outstanding, and latency counts
from the scheduled time, so a slow server cannot hide its queueing (no coordinated omission).

The client is aiohttp on uvloop (plain asyncio where uvloop is missing): httpx's connection pool cost
about 5 ms of CPU per request at 1,000 QPS here, so the generator fell behind its own schedule; see
`bench/canary.py`. A target that reports how long it worked on a request (the standard ``Server-Timing``
header's durations, or ``X-Server-Time-Ms``) lets the window also record the client's own overhead: on a
busy machine the generator's delays add to both arms alike and dilute a relative ΔP95.

A window sends a weighted request mix (``LoadSpec``: method, URL, JSON body, weight; the same seeded
sequence in every window, so A and B see the same mix), with the target's headers. A request is an error
on a 5xx, a status the plan lists, a timeout or a connection failure. ``cancel`` ends a window at once
(outstanding requests are abandoned); ``live`` is updated as responses arrive, for a progress display.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import re
import resource
import threading
import time
from collections import Counter, deque
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opslab.canary.model import Measurement
from opslab.judge import percentile
from opslab.wire import SERVER_TIME_HEADER

T = TypeVar("T")
# Event-loop timers fire on whole milliseconds, late by up to one: aim half a tick early, so sends are
# on schedule on average rather than half a millisecond late every time.
EARLY_S = 0.0005


@dataclass(frozen=True)
class LoadRequest:
    method: str
    url: str
    body: bytes | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class LoadSpec:
    """What a window sends: a weighted mix of requests, the headers on each, and extra error statuses."""

    requests: tuple[LoadRequest, ...]
    headers: Mapping[str, str] = field(default_factory=dict)
    error_statuses: frozenset[int] = frozenset()
    seed: int = 0

    @classmethod
    def get(cls, url: str) -> LoadSpec:
        return cls((LoadRequest("GET", url),))

    @classmethod
    def of(
        cls,
        base_url: str,
        mix: Sequence[tuple[str, str, object, float]],
        *,
        headers: Mapping[str, str] | None = None,
        error_statuses: Sequence[int] = (),
        seed: int = 0,
    ) -> LoadSpec:
        """``mix``: (method, path, JSON body or None, weight) per kind of request."""
        requests = tuple(
            LoadRequest(
                method,
                base_url.rstrip("/") + path,
                None if body is None or method in ("GET", "HEAD") else json.dumps(body).encode(),
                weight,
            )
            for method, path, body, weight in mix
        )
        return cls(requests, dict(headers or {}), frozenset(error_statuses), seed)

    def sequence(self, n: int) -> list[LoadRequest]:
        """The first ``n`` requests of the seeded draw (the same for every window of a run)."""
        if len(self.requests) == 1:
            return [self.requests[0]] * n
        rng = random.Random(self.seed)
        return rng.choices(self.requests, weights=[r.weight for r in self.requests], k=n)


@dataclass
class LiveWindow:
    """A window as it runs, written by the load generator's thread and read by a progress display."""

    arm: str
    index: int
    total: int
    seconds: float
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    errors: int = 0
    recent_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))

    def p95_ms(self) -> float | None:
        recent = list(self.recent_ms)
        return percentile(recent, 95) if recent else None


def server_time_ms(headers: Mapping[str, str]) -> float | None:
    """How long the server says it worked: ``X-Server-Time-Ms``, else the longest ``dur`` of its
    ``Server-Timing`` entries (``app;dur=12.5, db;dur=3``: the enclosing one is the longest), else None."""
    own = headers.get(SERVER_TIME_HEADER)
    if own:
        try:
            return float(own)
        except ValueError:
            return None
    durations = [float(m.group(1)) for m in _DUR.finditer(headers.get("Server-Timing", ""))]
    return max(durations) if durations else None


_DUR = re.compile(r";\s*dur=([0-9]+(?:\.[0-9]+)?)")


def _connection_limit(qps: float, timeout_s: float) -> int:
    """Enough connections for everything that can be outstanding, within the open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = max(64, (soft if soft != resource.RLIM_INFINITY else 65536) // 2)
    return max(64, min(int(qps * timeout_s) + 1, room))


async def _window(
    load: LoadSpec,
    *,
    arm: str,
    qps: float,
    seconds: float,
    warmup_s: float,
    timeout_s: float,
    cancel: threading.Event | None,
    live: LiveWindow | None,
) -> Measurement:
    import aiohttp  # the load generator's client: loaded when a window runs, not with the plan's types

    n = max(1, int(qps * seconds))
    interval = 1.0 / qps
    latencies: list[float] = []
    overheads: list[float] = []
    sends: list[float] = []
    statuses: Counter[str] = Counter()
    errors = 0
    max_lag_ms = 0.0
    sequence = load.sequence(n)
    headers = {**load.headers}
    if any(r.body is not None for r in load.requests):
        headers.setdefault("Content-Type", "application/json")
    connector = aiohttp.TCPConnector(limit=_connection_limit(qps, timeout_s), keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:

        async def one(req: LoadRequest, scheduled: float, keep: bool) -> None:
            nonlocal errors, max_lag_ms
            sent_at = time.perf_counter()
            # Late (the generator fell behind): count from the schedule, as open-loop load must. Early
            # (timer wake-ups are aimed half a tick ahead): count from the actual send.
            origin = min(scheduled, sent_at)
            ok, server_ms, status = True, None, "error"
            try:
                async with session.request(req.method, req.url, data=req.body) as r:
                    await r.read()
                    status = str(r.status)
                    ok = r.status < 500 and r.status not in load.error_statuses
                    server_ms = server_time_ms(r.headers)
            except TimeoutError:
                ok, status = False, "timeout"
            except (aiohttp.ClientError, ValueError):
                ok = False
            latency = (time.perf_counter() - origin) * 1000
            if not keep:
                return
            sends.append(sent_at)
            statuses[status] += 1
            max_lag_ms = max(max_lag_ms, (sent_at - scheduled) * 1000)
            if ok:
                latencies.append(latency)
                if server_ms is not None:
                    overheads.append(latency - server_ms)
            else:
                errors += 1
            if live is not None:
                live.sent += 1
                live.errors += 0 if ok else 1
                if ok:
                    live.recent_ms.append(latency)

        start = time.perf_counter() + 0.01
        tasks = []
        for i in range(n):
            if cancel is not None and cancel.is_set():
                break
            scheduled = start + i * interval
            delay = scheduled - EARLY_S - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(sequence[i], scheduled, keep=i * interval >= warmup_s))
            tasks.append(task)
        if cancel is not None and cancel.is_set():
            for task in tasks:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
        statuses=dict(statuses),
    )


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(coro)
    return uvloop.run(coro)


def measure(
    load: LoadSpec | str,
    *,
    arm: str,
    qps: float,
    seconds: float,
    warmup_s: float = 0.0,
    timeout_s: float = 5.0,
    cancel: threading.Event | None = None,
    live: LiveWindow | None = None,
) -> Measurement:
    """One arm's window of open-loop requests (``load``, or GETs of a URL) at ``qps`` for ``seconds`` (the
    first ``warmup_s`` are sent but not counted)."""
    spec = LoadSpec.get(load) if isinstance(load, str) else load
    # A cyclic-GC pass over thousands of live tasks stalls the schedule for tens of milliseconds; a
    # window's garbage is reference-counted away, and the collector runs again right after.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(
            _window(
                spec,
                arm=arm,
                qps=qps,
                seconds=seconds,
                warmup_s=warmup_s,
                timeout_s=timeout_s,
                cancel=cancel,
                live=live,
            )
        )
    finally:
        if enabled:
            gc.enable()
