"""Soak: 200 concurrent clients ingest into one `opslab serve` for 60 s (bounded), on SQLite and PostgreSQL.

Each client posts single runs (unique ids) as fast as the service answers. Afterwards every run the service
acknowledged (201) is looked up: acknowledged must equal stored. Latency p50/p99 and errors are recorded
beside the same figures at 8 clients, in the same run, as the peer.

    python bench/soak.py [--clients 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._common import scratch_postgres, seed_run, service, write_result


async def _soak(url: str, clients: int, seconds: float, prefix: str) -> dict[str, Any]:
    template = seed_run()
    latencies: list[float] = []
    acknowledged: list[str] = []
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def client(c: int) -> None:
            i = 0
            while time.monotonic() < deadline:
                run = copy.deepcopy(template)
                run["run_id"] = f"{prefix}-{c}-{i}"
                i += 1
                t0 = time.perf_counter()
                try:
                    r = await http.post("/agent-runs", json=run)
                    key = str(r.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[key] = statuses.get(key, 0) + 1
                if key == "201":
                    acknowledged.append(run["run_id"])

        start = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        wall = time.perf_counter() - start

    missing = 0
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=60) as checker:  # fresh connections

        async def check(run_id: str) -> None:
            nonlocal missing
            async with sem:
                for attempt in range(3):
                    try:
                        r = await checker.get(f"/agent-runs/{run_id}")
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
                missing += r.status_code != 200

        await asyncio.gather(*(check(rid) for rid in acknowledged))
    latencies.sort()
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": len(latencies),
        "acknowledged": len(acknowledged),
        "acknowledged_missing": missing,
        "statuses": statuses,
        "errors": sum(n for k, n in statuses.items() if k != "201"),
        "runs_per_s": round(len(acknowledged) / wall, 1),
        "latency_ms": {
            "p50": round(statistics.median(latencies), 1) if latencies else None,
            "p99": round(latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
            "max": round(latencies[-1], 1) if latencies else None,
        },
    }


def measure(db_url: str, work: Path, clients: int, seconds: float) -> dict[str, Any]:
    env = {"OPSLAB_DATA_DIR": str(work), "OPSLAB_DATABASE_URL": db_url}
    with service(env, work.with_suffix(".log")) as url:
        peer = asyncio.run(_soak(url, 8, min(15.0, seconds), "peer"))
        soak = asyncio.run(_soak(url, clients, seconds, "soak"))
    return {"soak": soak, "peer_8_clients": peer}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opslab-bench-soak-"))
    result: dict[str, Any] = {"target": "acknowledged == stored; no 5xx"}
    result["sqlite"] = measure(f"sqlite:///{work / 'soak.db'}", work / "sqlite", args.clients, args.seconds)
    with scratch_postgres() as pg:
        result["postgres"] = measure(pg, work / "pg", args.clients, args.seconds) if pg else None
    write_result("soak", result)


if __name__ == "__main__":
    main()
