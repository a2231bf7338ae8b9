"""The responder's chaos suite, repeated: every scenario N times (default 5) on one sandbox world with a
1 s poll, the figures per scenario as median and spread, beside the targets the issue sets (>= 90 %
resolved, detection within 2 polls, recovery <= 30 s, 0 actions on the controls).

    python -m bench.responder [--repeat 5] [--poll-interval 1] [--drills]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench._common import write_result
from opslab.sandbox import ScenarioScore, run_suite, suite_scenarios


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--drills", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opslab-bench-responder-") as tmp:
        result = run_suite(
            Path(tmp),
            poll_interval_s=args.poll_interval,
            repeat=args.repeat,
            scenarios=suite_scenarios(drills=args.drills),
        )
    faults = [s for s in result.scenarios if not s.control]
    write_result(
        "responder",
        {
            "poll_interval_s": args.poll_interval,
            "repeat": args.repeat,
            "targets": {
                "resolved_rate": ">= 0.9",
                "mttd_s": f"<= {2 * args.poll_interval:g} + one metrics window",
                "mttr_s": "<= 30",
                "control_actions": 0,
            },
            "summary": result.summary.model_dump(mode="json"),
            "mttd_polls": spread([s.mttd_s / args.poll_interval for s in faults if s.mttd_s is not None]),
            "scenarios": per_scenario(result.scenarios),
        },
    )


if __name__ == "__main__":
    main()
