"""Canary load generator and verdicts against the sandbox (its own process, as in production):
achieved/target QPS at 200 and 1,000 QPS (target within 2%), measured p95 against the sandbox's
configured p95, and a verdict-correctness matrix over seeds per effect size. The A/A calibration of the
ΔP95 interval is ``bench/canary_aa.py``."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._common import OPSLAB, write_result
from opslab.api import free_port
from opslab.canary import HttpTarget, measure, parse_plan, run_canary
from opslab.judge import percentile

BASE = {
    "control": {"flow_policy": "static", "target_p95": 1200},
    "routing": {"mode": "default", "topk_threshold": 32},
}
EFFECTS = {
    "-20%": {"routing_mode": "rules", "topk_threshold": 20},
    "-7%": {"topk_threshold": 18},
    "0%": {},
    "+2% errors": {"routing_mode": "rules", "topk_threshold": 20},
}
EXPECTED = {"-20%": "PASS", "-7%": "EDGE", "0%": "FAIL", "+2% errors": "FAIL"}


def sandbox(
    port: int, seed: int, median: float, sigma: float, cpu: int | None = None
) -> subprocess.Popen[bytes]:
    """``cpu``: pin the service to one core (and this process, the load generator, to the others), as
    load tests isolate the system under test from the client."""
    proc = subprocess.Popen(
        [
            OPSLAB,
            "sandbox",
            "up",
            "--port",
            str(port),
            "--seed",
            str(seed),
            "--base-median-ms",
            str(median),
            "--sigma",
            str(sigma),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu})),
    )
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/lab/config", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("sandbox did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def qps_accuracy(seconds: dict[int, float], *, pin: bool) -> dict[str, Any]:
    port = free_port()
    cpus = sorted(os.sched_getaffinity(0))
    pinned = pin and len(cpus) >= 2
    proc = sandbox(port, 1, 20.0, 0.35, cpu=cpus[-1] if pinned else None)
    if pinned:
        os.sched_setaffinity(0, set(cpus[:-1]))
    out: dict[str, Any] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        configured = httpx.get(f"{url}/api/sandbox/model").json()["p95_ms"]
        measure(f"{url}/api/search", arm="warm", qps=200, seconds=1.0)
        for qps, secs in seconds.items():
            w = measure(f"{url}/api/search", arm="bench", qps=qps, seconds=secs, warmup_s=0.5)
            measured = percentile(w.latencies_ms, 95)
            # The server's own time for the same requests: the p95 it really served, sampling noise and all.
            served = percentile([lat - o for lat, o in zip(w.latencies_ms, w.overhead_ms, strict=True)], 95)
            out[str(qps)] = {
                "target_qps": qps,
                "achieved_qps": round(w.achieved_qps, 1),
                "qps_error_pct": round(100 * (w.achieved_qps - qps) / qps, 2),
                "measured_p95_ms": round(measured, 2),
                "configured_p95_ms": round(configured, 2),
                "p95_error_ms": round(measured - configured, 2),
                "served_p95_ms": round(served, 2),
                "p95_minus_served_ms": round(measured - served, 2),
                "client_overhead_ms": {
                    "p50": round(percentile(w.overhead_ms, 50), 2),
                    "p95": round(percentile(w.overhead_ms, 95), 2),
                },
                "max_send_lag_ms": round(w.max_send_lag_ms, 2),
                "errors": w.errors,
                "samples": len(w.latencies_ms),
            }
    finally:
        stop(proc)
        os.sched_setaffinity(0, set(cpus))
    out["pinned"] = pinned
    return out


def verdict_matrix(seeds: int, workdir: Path, window_sec: float) -> dict[str, Any]:
    """One sandbox per seed (its latency draws), every effect size judged against it."""
    decisions: dict[str, dict[str, int]] = {name: {} for name in EFFECTS}
    applied: dict[str, int] = dict.fromkeys(EFFECTS, 0)
    deltas: dict[str, list[float]] = {name: [] for name in EFFECTS}
    for seed in range(seeds):
        port = free_port()
        proc = sandbox(port, seed, 200.0, 0.1)
        url = f"http://127.0.0.1:{port}"
        try:
            for name, candidate in EFFECTS.items():
                httpx.post(f"{url}/api/flags", json=BASE).raise_for_status()
                faults = {"error_rate": 0.02 if "errors" in name else 0.0}
                httpx.post(f"{url}/api/sandbox/faults", json=faults).raise_for_status()
                exp = {
                    "qps": 100.0,
                    "window_sec": window_sec,
                    "rounds": 2,
                    "flow_policy": "static",
                    "target_p95": 1200,
                    "routing_mode": "default",
                    "topk_threshold": 32,
                    **candidate,
                }
                plan = parse_plan(
                    {"experiment": exp, "target": {"base_url": url}, "seed": seed, "min_samples_per_arm": 100}
                )
                target = HttpTarget(plan.target)
                try:
                    r = run_canary(plan, target, reports_dir=workdir / "r", history_path=workdir / "h.jsonl")
                finally:
                    target.close()
                decisions[name][r.decision] = decisions[name].get(r.decision, 0) + 1
                applied[name] += bool(r.applied)
                if r.delta_p95_pct is not None:
                    deltas[name].append(r.delta_p95_pct)
        finally:
            stop(proc)
    return {
        name: {
            "expected": EXPECTED[name],
            "decisions": decisions[name],
            "correct": round(decisions[name].get(EXPECTED[name], 0) / seeds, 3),
            "applied": applied[name],
            "delta_p95_pct": {
                "min": round(min(deltas[name]), 2) if deltas[name] else None,
                "median": round(percentile(deltas[name], 50), 2) if deltas[name] else None,
                "max": round(max(deltas[name]), 2) if deltas[name] else None,
            },
        }
        for name in EFFECTS
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--seconds", type=float, default=20.0, help="Window per QPS level (more samples, less noise)."
    )
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--pin", action="store_true", help="Pin the sandbox to one core, the client to the rest.")
    ap.add_argument("--loadgen-only", action="store_true", help="Skip the verdict matrix.")
    ap.add_argument(
        "--matrix-window", type=float, default=3.0, help="Window seconds of the matrix's canaries."
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opslab-bench-canary-"))
    result = {
        "loadgen": qps_accuracy({200: args.seconds, 1000: args.seconds / 2}, pin=args.pin),
        "verdicts": None if args.loadgen_only else verdict_matrix(args.seeds, work, args.matrix_window),
        "matrix_plan": {"qps": 100, "window_sec": args.matrix_window, "rounds": 2, "sandbox_median_ms": 200},
        "targets": {"qps_error_pct": 2.0, "p95_error_ms": 1.0},
    }
    write_result("canary_loadgen" if args.loadgen_only else "canary", result)


if __name__ == "__main__":
    main()
