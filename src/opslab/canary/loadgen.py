"""Open-loop load: requests leave at their scheduled times whatever is outstanding, and latency counts
from the scheduled time, so a slow server cannot hide its queueing (no coordinated omission)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Window:
    arm: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    sent: int = 0
    duration_s: float = 0.0

    @property
    def achieved_qps(self) -> float:
        return self.sent / self.duration_s if self.duration_s else 0.0

    @property
    def error_rate_pct(self) -> float:
        return 100.0 * self.errors / self.sent if self.sent else 0.0


async def _window(
    url: str,
    *,
    arm: str,
    qps: float,
    seconds: float,
    warmup_s: float,
    timeout_s: float,
    client: httpx.AsyncClient,
) -> Window:
    n = max(1, int(qps * seconds))
    interval = 1.0 / qps
    out = Window(arm=arm)
    start = time.perf_counter() + 0.01
    tasks = []
    first_sent = last_sent = 0.0

    async def one(scheduled: float, keep: bool) -> None:
        nonlocal first_sent, last_sent
        sent_at = time.perf_counter()
        if keep:
            first_sent = first_sent or sent_at
            last_sent = max(last_sent, sent_at)
        ok = True
        try:
            r = await client.get(url, timeout=timeout_s)
            ok = r.status_code < 500
        except httpx.HTTPError:
            ok = False
        latency = (time.perf_counter() - scheduled) * 1000
        if keep:
            out.sent += 1
            out.errors += not ok
            if ok:
                out.latencies_ms.append(latency)

    for i in range(n):
        scheduled = start + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, keep=i * interval >= warmup_s)))
    await asyncio.gather(*tasks)
    # Achieved rate from the actual send times: a client that falls behind its schedule shows it here.
    kept = out.sent
    out.duration_s = (
        (last_sent - first_sent) * kept / (kept - 1) if kept > 1 and last_sent > first_sent else 1e-9
    )
    return out


def run_window(
    url: str, *, arm: str, qps: float, seconds: float, warmup_s: float = 0.0, timeout_s: float = 5.0
) -> Window:
    """One arm's window at ``qps`` for ``seconds`` (the first ``warmup_s`` are sent but not counted)."""

    async def main() -> Window:
        limits = httpx.Limits(max_connections=max(10, int(qps)), max_keepalive_connections=max(10, int(qps)))
        async with httpx.AsyncClient(limits=limits) as client:
            return await _window(
                url, arm=arm, qps=qps, seconds=seconds, warmup_s=warmup_s, timeout_s=timeout_s, client=client
            )

    return asyncio.run(main())
