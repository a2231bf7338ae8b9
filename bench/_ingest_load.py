"""Load generator for bench/ingest.py, run as its own process: POSTs unique copies of the seed run."""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import time

import httpx

from bench._common import seed_run


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--mode", choices=["single", "batch"], required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--prefix", default="b")
    args = ap.parse_args()
    template = seed_run()

    def body(i: int) -> dict[str, object]:
        run = copy.deepcopy(template)
        run["run_id"] = f"{args.prefix}-{i}"
        return run

    if args.mode == "single":
        payloads = [json.dumps(body(i)).encode() for i in range(args.runs)]
        path, per_request = "/agent-runs", 1
    else:
        payloads = [
            json.dumps([body(i) for i in range(start, min(start + args.batch_size, args.runs))]).encode()
            for start in range(0, args.runs, args.batch_size)
        ]
        path, per_request = "/agent-runs/batch", args.batch_size
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)
    errors = 0
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                payload = queue.get_nowait()
                r = await client.post(path, content=payload, headers={"content-type": "application/json"})
                if r.status_code >= 300:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - start
    print(
        json.dumps(
            {
                "mode": args.mode,
                "connections": args.concurrency,
                "runs": args.runs,
                "requests": len(payloads),
                "wall_s": round(wall, 3),
                "runs_per_s": round(args.runs / wall, 1),
                "errors": errors,
                "runs_per_request": per_request,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
