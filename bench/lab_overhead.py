"""Runner overhead: 1,000 trials of a no-op shell harness at concurrency 8, beside the floor of
`xargs -P 8` running the same script on pre-written inputs, in the same run. Target: ratio <= 1.5.
Also the runner's peak memory (max RSS), and the CPU time of each side (the process and everything it
started): on a machine other work keeps busy, wall times stretch by how the scheduler shares the cores
out, CPU times far less, so ``cpu_ratio`` says what the runner costs beside the floor when ``ratio``
cannot.

With ``--redis-url`` (default: Redis on localhost; ``--rq-workers 0`` or no Redis there skips it), each
pair also runs the same trials with ``--executor rq`` on two `opslab worker` processes started once
beforehand, beside a floor of ``xargs -P <workers>`` (a worker runs one trial at a time)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._common import OPSLAB, write_result

TARGET_RATIO = 1.5

NOOP = """#!/bin/sh
# --input IN --output OUT: copy the input beside the output and report success
cp "$2" "$4.input"
printf '{"outcome": "success", "metrics": {"ok": 1}}' > "$4"
"""


def make_project(root: Path, trials: int) -> Path:
    proj = root / "proj"
    (proj / ".lab").mkdir(parents=True)
    (proj / "data").mkdir()
    (proj / "noop.sh").write_text(NOOP)
    (proj / "noop.sh").chmod(0o755)
    (proj / "data" / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_id": f"t{i}"}) + "\n" for i in range(trials))
    )
    (proj / ".lab" / "experiment.yaml").write_text(
        "experiment: {id: overhead, name: overhead}\n"
        f"dataset: {{path: ../data/tasks.jsonl, limit: {trials}}}\n"
        "design: {replications: 1, random_seed: 1}\n"
        "runtime: {harness: {command: [sh, ./noop.sh]}, network: {mode: full}}\n"
        "variants: {baseline: {id: only, bindings: {}}}\n"
    )
    return proj


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def floor(root: Path, trials: int, concurrency: int) -> float:
    """Wall seconds of ``xargs -P concurrency`` over the trials (its CPU: ``cpu_of_children``)."""
    work = root / "floor"
    work.mkdir()
    script = root / "noop.sh"
    script.write_text(NOOP)
    lines = []
    for i in range(trials):
        inp = work / f"in_{i}.json"
        inp.write_text(json.dumps({"task_id": f"t{i}", "bindings": {}}))
        lines.append(f"--input {inp} --output {work / f'out_{i}.json'}")
    start = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", str(concurrency), "-n", "4", "sh", str(script)],
        input="\n".join(lines),
        text=True,
        check=True,
    )
    return time.perf_counter() - start


def redis_unreachable(url: str) -> str | None:
    """Why the rq executor cannot be measured here, or None when Redis answers."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return str(exc)
    return None


@contextmanager
def rq_workers(root: Path, redis_url: str, count: int) -> Iterator[dict[str, str]]:
    """``count`` `opslab worker` processes on a queue of their own; yields the environment reaching them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")}
    env.update(
        OPSLAB_DATA_DIR=str(root / "workers"),
        OPSLAB_REDIS_URL=redis_url,
        OPSLAB_JOB_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
    )
    procs = [
        subprocess.Popen(
            [OPSLAB, "worker", "--name", f"{env['OPSLAB_JOB_QUEUE']}-{i}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for i in range(count)
    ]
    try:
        time.sleep(3)  # started and listening: their start-up is not the runner's overhead
        yield env
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(30)


def rq_run(root: Path, trials: int, env: dict[str, str], workers: int) -> dict[str, Any]:
    proj = make_project(root / "rq", trials)
    os.sync()
    start = time.perf_counter()
    out = subprocess.run(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--executor", "rq", "--json"],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rq_s = time.perf_counter() - start
    (root / "rq").mkdir(exist_ok=True)
    os.sync()
    floor_s = floor(root / "rq", trials, workers)
    return {
        "rq_wall_s": round(rq_s, 3),
        "floor_xargs_p_workers_wall_s": round(floor_s, 3),
        "rq_ratio": round(rq_s / floor_s, 3),
        "rq_outcomes": json.loads(out.stdout)["run"]["outcomes"],
    }


def one_pair(root: Path, trials: int, concurrency: int, *, floor_first: bool) -> dict[str, Any]:
    """The floor and opslab on the same trials on fresh directories; each starts with the disk's dirty
    pages written out (``sync``), and pairs alternate which runs first, so neither pays for the other's
    writeback."""
    root.mkdir()
    proj = make_project(root, trials)

    def run_floor() -> tuple[float, float]:
        os.sync()
        cpu = cpu_of_children()
        wall = floor(root, trials, concurrency)
        return wall, cpu_of_children() - cpu

    if floor_first:
        floor_s, floor_cpu = run_floor()
    os.sync()
    before = cpu_of_children()
    start = time.perf_counter()
    out = subprocess.run(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--concurrency", str(concurrency), "--json"],
        cwd=proj,
        capture_output=True,
        text=True,
        check=True,
    )
    lab_s = time.perf_counter() - start
    lab_cpu = cpu_of_children() - before
    if not floor_first:
        floor_s, floor_cpu = run_floor()
    run = json.loads(out.stdout)["run"]
    return {
        "opslab_wall_s": round(lab_s, 3),
        "floor_xargs_wall_s": round(floor_s, 3),
        "ratio": round(lab_s / floor_s, 3),
        "opslab_cpu_s": round(lab_cpu, 2),
        "floor_cpu_s": round(floor_cpu, 2),
        "cpu_ratio": round(lab_cpu / floor_cpu, 3),
        "outcomes": run["outcomes"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5, help="Pairs to run; the median ratio is the figure.")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="Redis of the rq executor.")
    ap.add_argument("--rq-workers", type=int, default=2, help="Workers of the rq executor (0: skip it).")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="opslab-bench-lab-"))
    pairs = [
        one_pair(root / f"pair_{i}", args.trials, args.concurrency, floor_first=i % 2 == 0)
        for i in range(args.repeat)
    ]
    rq: dict[str, Any] | None = None
    unreachable = redis_unreachable(args.redis_url) if args.rq_workers else None
    if unreachable:
        rq = {"skipped": f"no Redis at {args.redis_url}: {unreachable}"}
    elif args.rq_workers:
        with rq_workers(root, args.redis_url, args.rq_workers) as env:
            runs = [rq_run(root / f"pair_{i}", args.trials, env, args.rq_workers) for i in range(args.repeat)]
        rq_ratios = sorted(r["rq_ratio"] for r in runs)
        rq = {
            "workers": args.rq_workers,
            "ratio_to_floor": round(statistics.median(rq_ratios), 2),
            "ratio_range": [rq_ratios[0], rq_ratios[-1]],
            "floor": f"xargs -P {args.rq_workers} (a worker runs one trial at a time)",
            "per_trial_ms": round(1000 * statistics.median(r["rq_wall_s"] for r in runs) / args.trials, 2),
            "runs": runs,
        }
    ratios = sorted(p["ratio"] for p in pairs)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    median = statistics.median(ratios)
    cpu_ratios = sorted(p["cpu_ratio"] for p in pairs)
    result: dict[str, Any] = {
        "trials": args.trials,
        "concurrency": args.concurrency,
        "ratio": round(median, 2),
        "ratio_range": [ratios[0], ratios[-1]],
        "target_ratio": TARGET_RATIO,
        "met": median <= TARGET_RATIO,
        "cpu_ratio": round(statistics.median(cpu_ratios), 2),
        "cpu_ratio_range": [cpu_ratios[0], cpu_ratios[-1]],
        "load_average": [round(x, 1) for x in os.getloadavg()],  # when the pairs ended, this included
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "per_trial_ms": {
            "opslab": round(1000 * statistics.median(p["opslab_wall_s"] for p in pairs) / args.trials, 2),
            "floor": round(1000 * statistics.median(p["floor_xargs_wall_s"] for p in pairs) / args.trials, 2),
        },
        "cpu_per_trial_ms": {
            "opslab": round(1000 * statistics.median(p["opslab_cpu_s"] for p in pairs) / args.trials, 2),
            "floor": round(1000 * statistics.median(p["floor_cpu_s"] for p in pairs) / args.trials, 2),
        },
        "pairs": pairs,
        "rq_executor": rq,
    }
    write_result("lab_overhead", result)


if __name__ == "__main__":
    main()
