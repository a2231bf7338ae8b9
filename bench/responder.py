"""The responder's chaos suite on a quiet and on a busy machine in the same run (busy: two processes
spinning on both cores for the whole column), every scenario N times, the figures per scenario as median
and spread beside the targets (>= 90 % resolved, 0 false actions, recovery <= 30 s, 0 actions on the
controls); then the faults from outside the chaos server (a process killed or stopped by hand, a lock on
the target's database, latency on the network path), each on a world of its own, on both machines too;
then the traffic-beside-faults rows: the suite's faults and controls again with something running beside
each (``sandbox.beside``: the target's own A/B canary, a 5x burst, the kill switch for 10 s, the same fault
again once fixed), quiet and busy — each fault resolved, no false action.

    python -m bench.responder [--repeat 1] [--poll-interval 1] [--drills] [--no-outside] [--no-beside]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench._common import write_result
from bench._responder_outside import DRILLS, run_drill
from opslab.sandbox import ScenarioScore, run_suite, suite_scenarios
from opslab.sandbox.beside import Beside
from opslab.sandbox.harm import busy_cpus

BESIDE_MODES: tuple[Beside, ...] = ("canary", "burst", "kill_switch", "repeat")
BESIDE_SCENARIOS = [
    "db-pool-exhaustion",
    "memory-leak",
    "latency-flag",
    "bad-deploy",
    "dependency-outage",
    "no-fault",
    "traffic-spike",
]


def beside_row(args: argparse.Namespace, mode: Beside, busy: bool) -> dict[str, Any]:
    started = time.monotonic()
    load = busy_cpus() if busy else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="opslab-bench-beside-") as tmp, load:
        result = run_suite(
            Path(tmp),
            poll_interval_s=args.poll_interval,
            repeat=args.repeat,
            scenarios=suite_scenarios(only=BESIDE_SCENARIOS),
            beside=mode,
        )
    return {
        "beside": mode,
        "machine_load": "busy" if busy else "quiet",
        "seconds": round(time.monotonic() - started),
        "summary": result.summary.model_dump(mode="json"),
        "scenarios": per_scenario(result.scenarios),
    }


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def per_scenario(scores: list[ScenarioScore]) -> dict[str, Any]:
    by: dict[str, list[ScenarioScore]] = defaultdict(list)
    for s in scores:
        by[s.name].append(s)
    table: dict[str, Any] = {}
    for name, runs in by.items():
        table[name] = {
            "fault": runs[0].fault,
            "runs": len(runs),
            "detected": sum(r.detected for r in runs),
            "diagnosis_correct": sum(r.diagnosis_correct for r in runs),
            "resolved": sum(r.resolved for r in runs),
            "outcome_correct": sum(r.outcome_correct for r in runs),
            "mttd_s": spread([r.mttd_s for r in runs if r.mttd_s is not None]),
            "mttr_s": spread([r.mttr_s for r in runs if r.mttr_s is not None]),
            "actions": spread([float(r.actions) for r in runs]),
            "false_actions": sum(r.false_actions for r in runs),
        }
    return table


def column(args: argparse.Namespace, busy: bool) -> dict[str, Any]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="opslab-bench-responder-") as tmp:
        load = busy_cpus() if busy else contextlib.nullcontext()
        with load:
            result = run_suite(
                Path(tmp),
                poll_interval_s=args.poll_interval,
                repeat=args.repeat,
                scenarios=suite_scenarios(drills=args.drills),
            )
            outside = []
            if args.outside:
                for drill in DRILLS:
                    with tempfile.TemporaryDirectory(prefix="opslab-bench-outside-") as d:
                        outside.append(run_drill(drill, Path(d), poll_interval_s=args.poll_interval))
    faults = [s for s in result.scenarios if not s.control]
    return {
        "machine_load": "busy: 2 processes spinning on the 2 cores" if busy else "quiet",
        "seconds": round(time.monotonic() - started),
        "summary": result.summary.model_dump(mode="json"),
        "mttd_polls": spread([s.mttd_s / args.poll_interval for s in faults if s.mttd_s is not None]),
        "scenarios": per_scenario(result.scenarios),
        "outside": outside,
        "outside_summary": {
            "drills": len(outside),
            "diagnosis_correct": sum(o["diagnosis_correct"] for o in outside),
            "outcome_correct": sum(o["outcome_correct"] for o in outside),
            "extra_incidents": sum(max(0, o["incidents"] - 1) + o["warmup_incidents"] for o in outside),
            "median_mttd_s": spread([o["mttd_s"] for o in outside if o["mttd_s"] is not None]),
            "median_mttr_s": spread([o["mttr_s"] for o in outside if o["mttr_s"] is not None]),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--drills", action="store_true")
    parser.add_argument("--no-outside", dest="outside", action="store_false")
    parser.add_argument("--no-beside", dest="beside", action="store_false")
    parser.add_argument("--only-beside", action="store_true", help="only the traffic-beside-faults rows")
    args = parser.parse_args()
    columns = {} if args.only_beside else {"quiet": column(args, busy=False), "busy": column(args, busy=True)}
    beside = (
        {
            f"{mode}/{'busy' if busy else 'quiet'}": beside_row(args, mode, busy)
            for mode in BESIDE_MODES
            for busy in (False, True)
        }
        if args.beside or args.only_beside
        else {}
    )
    write_result(
        "responder_beside" if args.only_beside else "responder",
        {
            "poll_interval_s": args.poll_interval,
            "repeat": args.repeat,
            "targets": {
                "resolved_rate": ">= 0.9",
                "false_actions": 0,
                "mttd_s": f"<= {2 * args.poll_interval:g} + one metrics window",
                "mttr_s": "<= 30",
                "control_actions": 0,
            },
            **columns,
            **({"summary": columns["quiet"]["summary"]} if columns else {}),  # as results before this one
            "beside_faults": beside,
        },
    )


if __name__ == "__main__":
    main()
