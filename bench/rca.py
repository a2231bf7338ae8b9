"""RCA end to end: latency POST -> done on the embedded backend (target p50 < 200 ms), and the
throughput of 1,000 RCA jobs on two RQ workers over real Redis.

Latency is measured by a client watching the job (GET until done), on `opslab serve` in its own
process; throughput from the first POST until the last job is done, workers as `opslab worker`.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench._common import OPSLAB, seed_run, service, write_result
from opslab import proc
from opslab.client import OpslabClient


def wait(client: OpslabClient, rca_id: str) -> None:
    while client.get_rca(rca_id).status not in ("done", "failed"):
        time.sleep(0.002)


def latency(samples: int, work: Path) -> dict[str, Any]:
    with (
        service({"OPSLAB_DATA_DIR": str(work / "emb")}, work / "emb.log") as url,
        OpslabClient(url) as c,
    ):
        c.ingest_run(seed_run())
        wait(c, c.create_rca("run-001-sufficient").rca_run_id)  # warm-up
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            wait(c, c.create_rca("run-001-sufficient", force=True).rca_run_id)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "samples": samples,
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "target_p50_ms": 200,
    }


def throughput(jobs: int, work: Path, redis_url: str) -> dict[str, Any]:
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    env = {"OPSLAB_DATA_DIR": str(work / "rq"), "OPSLAB_REDIS_URL": redis_url, "OPSLAB_JOB_QUEUE": queue}
    with service(env, work / "rq.log") as url, OpslabClient(url, timeout=60) as c:
        base = seed_run()
        runs = []
        for i in range(jobs):
            run = copy.deepcopy(base)
            run["run_id"] = f"rq-{i}"
            runs.append(run)
        for i in range(0, jobs, 500):
            c.ingest_batch(runs[i : i + 500])
        full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}, **env}
        workers = [proc.spawn([OPSLAB, "worker"], env=full_env) for _ in range(2)]
        try:
            time.sleep(3)  # workers up
            t0 = time.perf_counter()
            ids = [c.create_rca(f"rq-{i}").rca_run_id for i in range(jobs)]
            for rid in ids:
                wait(c, rid)
            wall = time.perf_counter() - t0
            failed = sum(1 for rid in ids if c.get_rca(rid).status != "done")
        finally:
            for w in workers:
                w.stop(grace_s=20)
    return {
        "jobs": jobs,
        "workers": 2,
        "wall_s": round(wall, 2),
        "jobs_per_s": round(jobs / wall, 1),
        "failed": failed,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=1000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opslab-bench-rca-"))
    result: dict[str, Any] = {"embedded_latency": latency(args.samples, work)}
    redis_url = os.environ.get("OPSLAB_BENCH_REDIS_URL") or os.environ.get("OPSLAB_TEST_REDIS_URL")
    result["rq_throughput"] = throughput(args.jobs, work, redis_url) if redis_url else None
    write_result("rca", result)


if __name__ == "__main__":
    main()
