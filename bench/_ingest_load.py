"""Load generator for bench/ingest.py, run as its own process: POSTs unique copies of the seed run."""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import time

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from bench._common import seed_run
from bench._otlp_payload import SPANS_PER_TRACE
from bench._otlp_payload import payloads as otlp_payloads


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--mode", choices=["single", "batch", "otlp-protobuf", "otlp-json"], required=True)
    ap.add_argument("--first-trace", type=int, default=1)
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

    headers = {"content-type": "application/json"}
    if args.mode.startswith("otlp-"):
        encoding = args.mode.removeprefix("otlp-")
        requests = max(1, args.runs // args.batch_size)
        payloads = otlp_payloads(requests, args.batch_size, encoding, first_trace=args.first_trace)
        path, per_request = "/v1/traces", args.batch_size * SPANS_PER_TRACE
        headers = {
            "content-type": "application/x-protobuf" if encoding == "protobuf" else "application/json",
            "content-encoding": "gzip",
        }
    elif args.mode == "single":
        payloads = [json.dumps(body(i)).encode() for i in range(args.runs)]
        path, per_request = "/agent-runs", 1
    else:
        payloads = [
            json.dumps([body(i) for i in range(start, min(start + args.batch_size, args.runs))]).encode()
            for start in range(0, args.runs, args.batch_size)
        ]
        path, per_request = "/agent-runs/batch", args.batch_size

    def rejected(r: httpx.Response) -> bool:
        """Did an OTLP export come back with spans refused (partial success)?"""
        if args.mode == "otlp-json":
            return bool(r.json().get("partialSuccess"))
        if args.mode == "otlp-protobuf":
            answer = ExportTraceServiceResponse()
            answer.ParseFromString(r.content)
            return answer.partial_success.rejected_spans > 0
        return False

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
                r = await client.post(path, content=payload, headers=headers)
                if r.status_code >= 300 or rejected(r):
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - start
    figures: dict[str, object] = {
        "mode": args.mode,
        "connections": args.concurrency,
        "requests": len(payloads),
        "wall_s": round(wall, 3),
        "errors": errors,
    }
    if args.mode.startswith("otlp-"):
        spans = len(payloads) * per_request
        figures.update(spans=spans, spans_per_s=round(spans / wall, 1), spans_per_request=per_request)
    else:
        figures.update(runs=args.runs, runs_per_s=round(args.runs / wall, 1), runs_per_request=per_request)
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
