"""Root-cause localisation on AgentRx's annotated τ-bench and Magentic-One failures.

Records, with the machine and the method's version:
- cross-validated figures (leave-one-out over the 73 runs of both sets, the scorers refitted 73 times):
  the results; and per set, the figures of the shipped localiser (in-sample: it was fitted on these
  runs), beside the majority-agent baseline;
- RCA latency per run in deterministic mode, on the dev set and on 300- and 600-step transcripts.

``--write-model`` refits the shipped localiser (src/opslab/rca/localizer.json) on all 73 runs.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench._common import ROOT, write_result
from opslab.rca import analyze_run, load_ground_truth, score
from opslab.rca.evaluate import Truth
from opslab.rca.localize import shipped
from opslab.rca.train import METHOD_VERSION, Example, cross_validate, fit
from opslab.rca.validate import cross_validated, examples_of, figures
from opslab.telemetry import AgentRunIn, import_runs

DATA = ROOT.parent / "shared" / "datasets" / "agentrx"
SETS: dict[str, tuple[Path, Path]] = {
    "tau-bench": (
        DATA / "tau_retail" / "tau_dataset_failed.json",
        DATA / "ground_truth" / "tau_ground_truth.json",
    ),
    "magentic": (DATA / "magentic_dataset", DATA / "ground_truth" / "magentic_one_ground_truth.json"),
}
MODEL = ROOT / "src" / "opslab" / "rca" / "localizer.json"


def _long(runs: list[AgentRunIn], steps: int) -> AgentRunIn:
    """A transcript of about ``steps`` steps: the dev set's runs one after the other."""
    out: list[Any] = []
    for run in runs:
        out.extend(run.steps)
        if len(out) >= steps:
            break
    renumbered = [s.model_copy(update={"step_id": f"step-{i}"}) for i, s in enumerate(out[:steps], start=1)]
    return runs[0].model_copy(update={"run_id": f"long-{steps}", "steps": renumbered, "tool_calls": []})


def _latency(runs: list[AgentRunIn], repeats: int = 1) -> dict[str, float]:
    times = []
    for run in runs:
        for _ in range(repeats):
            t0 = time.perf_counter()
            analyze_run(run)
            times.append((time.perf_counter() - t0) * 1000)
    return {
        "runs": len(runs),
        "steps_max": max(len(r.steps) for r in runs),
        "p50_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
    }


def main() -> None:
    runs: dict[str, list[AgentRunIn]] = {}
    truths: dict[str, dict[str, Truth]] = {}
    examples: list[Example] = []
    for fmt, (path, truth_file) in SETS.items():
        runs[fmt] = list(import_runs(fmt, path))  # type: ignore[arg-type]
        truths[fmt] = load_ground_truth(truth_file)
        examples += [
            dataclasses.replace(e, key=f"{fmt}:{e.key}") for e in examples_of(runs[fmt], truths[fmt], fmt)
        ]
    truth_of = {f"{fmt}:{k}": v for fmt, t in truths.items() for k, v in t.items()}
    if "--write-model" in sys.argv:
        model = fit(examples)
        sizes = Counter(e.group for e in examples)
        MODEL.write_text(json.dumps({**model.to_json(), "fitted_on_sets": dict(sizes)}, indent=1) + "\n")
        shipped.cache_clear()
    t0 = time.perf_counter()
    loo = cross_validate(examples)
    cv_seconds = round(time.perf_counter() - t0, 1)
    result: dict[str, Any] = {
        "method": METHOD_VERSION,
        "model_fitted_at": shipped().meta.get("fitted_at"),
        "protocol": "leave-one-out over the runs of both sets (scorers refitted without each run)",
        "cv_seconds": cv_seconds,
    }
    for fmt in SETS:
        mine = [e for e in examples if e.group == fmt]
        reports = {str(r.attributes.get("trajectory_id")): analyze_run(r) for r in runs[fmt]}
        majority = Counter(t.agent.lower() for t in truths[fmt].values()).most_common(1)[0]
        result[fmt] = {
            "cross_validated": figures(loo, mine, truth_of).model_dump(),
            "cross_validated_within_set_10_fold": cross_validated(
                [dataclasses.replace(e, key=e.key.split(":", 1)[1]) for e in mine], truths[fmt], 10
            ).model_dump(),
            "shipped_in_sample": score(reports, truths[fmt]).headline(),
            "majority_agent_baseline": {"agent": majority[0], "accuracy": round(majority[1] / len(mine), 4)},
            "latency": _latency(runs[fmt]),
        }
    every = [r for rs in runs.values() for r in rs]
    # One long transcript each, analysed five times: its median is the figure (a single reading is noise).
    result["latency_long"] = {str(n): _latency([_long(every, n)], repeats=5) for n in (300, 600)}
    write_result("rca_eval", result)


if __name__ == "__main__":
    main()
