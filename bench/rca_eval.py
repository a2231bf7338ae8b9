"""Root-cause localisation on AgentRx's annotated τ-bench and Magentic-One failures: transfer, not fit.

Records, with the machine and the method's version:
- **leave one system out** (the results): the localiser fitted (and calibrated) on one system only,
  scored on the other, both directions — beside three baselines computed in the same run on the same
  runs: always the held-out system's majority agent, the first error-looking message (its speaker, or
  the agent before a tool), the last agent to speak; and the reliability curve of its confidence there;
- the shipped model's calibration (fitted on those held-out answers) cross-fitted: calibrated on one
  direction's answers, its reliability read on the other's;
- **leave one run out** within each system: how well it learns a system (not how it transfers);
- the shipped model on the dev set (in-sample: it was fitted there, so not a result) and RCA latency.

- **systems never fitted on** (``--who-and-when DIR``): the shipped localiser on each part of the
  Who&When benchmark (Zhang et al., 2025; github.com/mingyin1/Agents_Failure_Attribution, MIT): its
  Algorithm-Generated runs have agents made up per task and no erroring calls (the mistake is a wrong
  fact, plan or hand-off), its Hand-Crafted ones are Magentic-One runs of other tasks; beside the same
  baselines. The data is not shipped: clone that repository and pass its ``Who&When`` folder.

``--write-model`` first refits the shipped localiser (src/opslab/rca/localizer.json) on both systems,
calibrated leaving one system out. ``--data DIR`` reads the AgentRx data elsewhere than
../shared/datasets/agentrx.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench._common import ROOT, write_result
from opslab.rca import analyze_run, load_labels, read_labelled, score
from opslab.rca.baselines import baseline_figures, majority_agent
from opslab.rca.calibrate import expected_calibration_error, fit_calibration, reliability
from opslab.rca.evaluate import Truth
from opslab.rca.labels import run_key
from opslab.rca.localize import calibration_inputs
from opslab.rca.scoring import shipped
from opslab.rca.train import METHOD_VERSION, Example, fit
from opslab.rca.transcript import read_transcript
from opslab.rca.validate import Predictions, cross_validate, examples_of, figures, leave_one_system_out
from opslab.telemetry import AgentRunIn, import_runs

DATA = ROOT.parent / "shared" / "datasets" / "agentrx"
MODEL = ROOT / "src" / "opslab" / "rca" / "localizer.json"


def sets(data: Path) -> dict[str, tuple[Path, Path]]:
    return {
        "tau-bench": (
            data / "tau_retail" / "tau_dataset_failed.json",
            data / "ground_truth" / "tau_ground_truth.json",
        ),
        "magentic": (data / "magentic_dataset", data / "ground_truth" / "magentic_one_ground_truth.json"),
    }


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


def _right(preds: Predictions, examples: list[Example], truth_of: dict[str, Truth]) -> list[bool]:
    return [(p := preds.get(e.key)) is not None and p.step.n == truth_of[e.key].step_number for e in examples]


def _curve(confidences: list[float], right: list[bool]) -> dict[str, Any]:
    bins = reliability(confidences, right)
    return {"bins": [b.model_dump() for b in bins], "ece": expected_calibration_error(bins)}


def transfer(examples: list[Example], truth_of: dict[str, Truth]) -> dict[str, Any]:
    """Leave one system out, both ways, with the baselines and the reliability of the confidence."""
    out: dict[str, Any] = {}
    pooled_conf: list[float] = []
    pooled_right: list[bool] = []
    answers: dict[str, tuple[list[Any], list[bool]]] = {}
    groups = sorted({e.group for e in examples})
    for held in groups:
        mine = [e for e in examples if e.group == held]
        truth = {e.key: truth_of[e.key] for e in mine}
        t0 = time.perf_counter()
        preds = leave_one_system_out(examples, held)
        right = _right(preds, mine, truth_of)
        conf = [p.confidence if (p := preds.get(e.key)) else 0.0 for e in mine]
        pooled_conf += conf
        pooled_right += right
        given = [(p, r) for e, r in zip(mine, right, strict=True) if (p := preds.get(e.key)) is not None]
        answers[held] = ([calibration_inputs(p) for p, _ in given], [r for _, r in given])
        majority, rate = majority_agent(truth)
        runs = {e.key: e.transcript for e in mine}
        fitted_on = "+".join(g for g in groups if g != held)
        out[f"{fitted_on}->{held}"] = {
            "runs": len(mine),
            "seconds": round(time.perf_counter() - t0, 1),
            "localizer": figures(preds, mine, truth_of).model_dump(),
            "baselines": {
                "majority_agent": {"agent": majority, "agent_accuracy": rate},
                "first_error": baseline_figures("first_error", runs, truth).model_dump(),
                "last_speaker": baseline_figures("last_speaker", runs, truth).model_dump(),
            },
            "reliability": _curve(conf, right),
        }
    out["reliability_pooled"] = _curve(pooled_conf, pooled_right)
    # The shipped calibration is fitted on these held-out answers; read honestly, cross-fitted: fitted
    # on one direction's answers, its reliability read on the other direction's.
    conf, right = [], []
    for held in groups:
        others = [a for g in groups if g != held for a in answers[g][0]]
        others_right = [r for g in groups if g != held for r in answers[g][1]]
        cal = fit_calibration(others, others_right, "leave-one-system-out")
        conf += [cal.probability(x) for x in answers[held][0]]
        right += answers[held][1]
    out["shipped_calibration_cross_fitted"] = _curve(conf, right)
    return out


def never_fitted_on(folder: Path) -> dict[str, Any]:
    """The shipped localiser on each part of Who&When (``folder``), with the baselines."""
    out: dict[str, Any] = {}
    for part in sorted(p for p in folder.iterdir() if p.is_dir()):
        labelled = read_labelled("who-and-when", part, None)
        runs = {run_key(r): r for r in labelled.runs}
        truth = {k: t for k, t in labelled.truth.items() if k in runs}
        t0 = time.perf_counter()
        reports = {k: analyze_run(r) for k, r in runs.items()}
        transcripts = {k: read_transcript(r) for k, r in runs.items()}
        majority, rate = majority_agent(truth)
        agents = statistics.mean(len({s.agent for s in r.steps}) for r in runs.values())
        out[f"who-and-when/{part.name}"] = {
            "runs": len(truth),
            "agents_per_run": round(agents, 1),
            "seconds": round(time.perf_counter() - t0, 1),
            "localizer": score(reports, truth).headline(),
            "baselines": {
                "majority_agent": {"agent": majority, "agent_accuracy": rate},
                "first_error": baseline_figures("first_error", transcripts, truth).model_dump(),
                "last_speaker": baseline_figures("last_speaker", transcripts, truth).model_dump(),
            },
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-model", action="store_true", help="refit src/opslab/rca/localizer.json first")
    ap.add_argument("--data", type=Path, default=DATA, help="the AgentRx data folder")
    ap.add_argument("--who-and-when", type=Path, help="the Who&When data folder (systems never fitted on)")
    args = ap.parse_args()
    runs: dict[str, list[AgentRunIn]] = {}
    truths: dict[str, dict[str, Truth]] = {}
    examples: list[Example] = []
    for fmt, (path, truth_file) in sets(args.data).items():
        runs[fmt] = list(import_runs(fmt, path))  # type: ignore[arg-type]
        truths[fmt] = load_labels(truth_file)
        examples += [
            dataclasses.replace(e, key=f"{fmt}:{e.key}") for e in examples_of(runs[fmt], truths[fmt], fmt)
        ]
    truth_of = {f"{fmt}:{k}": v for fmt, t in truths.items() for k, v in t.items()}
    if args.write_model:
        model = fit(examples)
        sizes = Counter(e.group for e in examples)
        MODEL.write_text(json.dumps({**model.to_json(), "fitted_on_sets": dict(sizes)}, indent=1) + "\n")
        shipped.cache_clear()
    result: dict[str, Any] = {
        "method": METHOD_VERSION,
        "model_fitted_at": shipped().meta.get("fitted_at"),
        "protocol": {
            "leave_one_system_out": "fitted and calibrated on one system's runs only; scored on the other's",
            "leave_one_run_out": "within each system: refitted without each run, scored on it",
        },
        "leave_one_system_out": transfer(examples, truth_of),
    }
    loro: dict[str, Any] = {}
    for fmt in truths:
        mine = [e for e in examples if e.group == fmt]
        t0 = time.perf_counter()
        loro[fmt] = {**figures(cross_validate(mine), mine, truth_of).model_dump()}
        loro[fmt]["seconds"] = round(time.perf_counter() - t0, 1)
    result["leave_one_run_out"] = loro
    for fmt in truths:
        reports = {str(r.attributes.get("trajectory_id")): analyze_run(r) for r in runs[fmt]}
        result[fmt] = {
            "shipped_in_sample": score(reports, truths[fmt]).headline(),
            "latency": _latency(runs[fmt]),
        }
    if args.who_and_when is not None:
        result["never_fitted_on"] = never_fitted_on(args.who_and_when)
    every = [r for rs in runs.values() for r in rs]
    # One long transcript each, analysed five times: its median is the figure (a single reading is noise).
    result["latency_long"] = {str(n): _latency([_long(every, n)], repeats=5) for n in (300, 600)}
    write_result("rca_eval", result)


if __name__ == "__main__":
    main()
