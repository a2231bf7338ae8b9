"""A/A calibration of the canary's ΔP95 interval: the candidate flags are the baseline's, so both arms draw
from one latency distribution and the true ΔP95 is 0. Each full canary (health gate, warm-up, windows,
judge) against the sandbox (its own process) must give a 95 % interval that covers 0 in at least 90 % of
the runs, and never PASS.

Beside it, the same windows judged the way the canary judged before (windows in ABAB order, requests
resampled one by one as if independent) — the peer measured in the same run. ``python -m bench.canary_aa
[--runs 20]``; results in ``bench/results/canary_aa-*.json``."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench._common import write_result
from bench.canary import BASE, sandbox, stop
from opslab.api import free_port
from opslab.canary import HttpTarget, Measurement, measure, parse_plan, run_canary
from opslab.judge import bootstrap_relative_delta_ci, p95, percentile

# (name, sandbox median ms, sigma, plan QPS, window seconds): the verdict matrix's setting, and the
# sandbox's default latency at a higher rate, where the machine's own noise weighs most.
CONFIGS = (("matrix", 200.0, 0.1, 100.0, 3.0), ("fast", 20.0, 0.35, 300.0, 5.0))
COVERAGE_TARGET = 0.9


class Recorder:
    """The canary's window runner (``measure``), keeping every window it ran, in order."""

    def __init__(self) -> None:
        self.windows: list[Measurement] = []

    def __call__(self, load: Any, **kw: Any) -> Measurement:
        m = measure(load, **kw)
        self.windows.append(m)
        return m


def _peer_ci(windows: list[Measurement]) -> tuple[float, float]:
    """The old judge: the counted windows labelled ABAB, every request resampled on its own."""
    counted = [w for w in windows if w.arm != "warmup"]
    a = [x for i, w in enumerate(counted) if i % 2 == 0 for x in w.latencies_ms]
    b = [x for i, w in enumerate(counted) if i % 2 == 1 for x in w.latencies_ms]
    ci = bootstrap_relative_delta_ci(a, b, p95, resamples=1000, seed=0)
    return ci.low, ci.high


def one_config(
    name: str, median: float, sigma: float, qps: float, window_sec: float, runs: int, work: Path
) -> dict[str, Any]:
    port = free_port()
    proc = sandbox(port, 1, median, sigma)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for seed in range(runs):
            httpx.post(f"{url}/api/flags", json=BASE).raise_for_status()
            exp = {
                "qps": qps,
                "window_sec": window_sec,
                "rounds": 2,
                "flow_policy": "static",
                "target_p95": 1200,
                "routing_mode": "default",
                "topk_threshold": 32,
            }  # the candidate is the baseline: an A/A run
            plan = parse_plan({"experiment": exp, "target": {"base_url": url}, "seed": seed})
            target, recorder = HttpTarget(plan.target), Recorder()
            try:
                r = run_canary(
                    plan, target, reports_dir=work / "r", history_path=work / "h.jsonl", window=recorder
                )
            finally:
                target.close()
            ci = r.judgement.delta_p95_ci if r.judgement else (float("nan"), float("nan"))
            peer = _peer_ci(recorder.windows)
            rows.append(
                {
                    "decision": r.decision,
                    "delta_p95_pct": round(r.delta_p95_pct or 0.0, 2),
                    "ci": [round(ci[0], 2), round(ci[1], 2)],
                    "covers_0": ci[0] <= 0 <= ci[1],
                    "by_round": [
                        round(d, 2) for d in (r.judgement.delta_p95_by_round if r.judgement else [])
                    ],
                    "send_lag_ms": [round(w.max_send_lag_ms, 1) for w in recorder.windows],
                    "peer_ci": [round(peer[0], 2), round(peer[1], 2)],
                    "peer_covers_0": peer[0] <= 0 <= peer[1],
                }
            )
    finally:
        stop(proc)
    coverage = sum(r["covers_0"] for r in rows) / len(rows)
    widths = [r["ci"][1] - r["ci"][0] for r in rows]
    decisions: dict[str, int] = {}
    for r in rows:
        decisions[r["decision"]] = decisions.get(r["decision"], 0) + 1
    return {
        "plan": {
            "qps": qps,
            "window_sec": window_sec,
            "rounds": 2,
            "sandbox_median_ms": median,
            "sigma": sigma,
        },
        "runs": len(rows),
        "coverage": round(coverage, 3),
        "peer_coverage": round(sum(r["peer_covers_0"] for r in rows) / len(rows), 3),
        "decisions": decisions,
        "passes": decisions.get("PASS", 0),
        "median_ci_width_pct": round(percentile(widths, 50), 2),
        "median_delta_p95_pct": round(percentile([r["delta_p95_pct"] for r in rows], 50), 2),
        "met": coverage >= COVERAGE_TARGET and decisions.get("PASS", 0) == 0,
        "rows": rows,
    }


def aa_calibration(runs: int, work: Path) -> dict[str, Any]:
    return {
        "target": {"coverage": COVERAGE_TARGET, "passes": 0},
        "peer": "the same windows labelled ABAB, requests resampled one by one (the judge before)",
        **{name: one_config(name, m, s, q, w, runs, work) for name, m, s, q, w in CONFIGS},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20, help="A/A canaries per setting.")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opslab-bench-canary-aa-"))
    write_result("canary_aa", {"aa": aa_calibration(args.runs, work)})


if __name__ == "__main__":
    main()
