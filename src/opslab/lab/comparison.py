"""The statistical comparison of a run's variants (`analysis/comparison.json` and `report.md`): per variant
n, success rate with a Wilson interval, metric means with t intervals (clustered by task when there are
replications); each treatment against the baseline paired by task, McNemar or sign test, pass@k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opslab.judge import (
    clustered_mean_interval,
    mcnemar,
    paired_difference,
    pass_at_k,
    sign_test,
    t_interval,
    wilson_interval,
)
from opslab.lab.artifacts import write_json
from opslab.lab.records import SCHEMA_VERSION, TrialRecord


def compare(
    run_dir: Path, outputs: list[TrialRecord], variant_order: list[str], metrics: list[str]
) -> dict[str, Any]:
    baseline = variant_order[0]

    def by_task(vid: str, metric: str) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for o in outputs:
            if o.variant_id != vid or o.outcome == "error":
                continue
            value = (
                1.0
                if metric == "success" and o.outcome == "success"
                else (0.0 if metric == "success" else o.metrics.get(metric))
            )
            if isinstance(value, int | float):
                out.setdefault(o.task_id, []).append(float(value))
        return out

    variants: dict[str, Any] = {}
    for vid in variant_order:
        mine = [o for o in outputs if o.variant_id == vid]
        wins = sum(1 for o in mine if o.outcome == "success")
        ci = wilson_interval(wins, len(mine))
        per_task = by_task(vid, "success")
        k_max = min((len(v) for v in per_task.values()), default=0)
        metric_stats = {}
        for m in metrics:
            tasks = by_task(vid, m)
            flat = [x for v in tasks.values() for x in v]
            if not flat:
                continue
            iv = (
                clustered_mean_interval(tasks)
                if any(len(v) > 1 for v in tasks.values())
                else t_interval(flat)
            )
            metric_stats[m] = {
                "mean": sum(flat) / len(flat),
                "ci": [iv.low, iv.high],
                "n": len(flat),
                "clustered_by_task": any(len(v) > 1 for v in tasks.values()),
            }
        variants[vid] = {
            "n": len(mine),
            "successes": wins,
            "errors": sum(1 for o in mine if o.outcome == "error"),
            "success_rate": wins / len(mine) if mine else None,
            "success_ci": [ci.low, ci.high],
            "pass_at_k": {
                str(k): _mean([pass_at_k(len(v), int(sum(v)), k) for v in per_task.values()])
                for k in range(1, k_max + 1)
            },
            "metrics": metric_stats,
        }
    comparisons = []
    for vid in variant_order[1:]:
        entry: dict[str, Any] = {"treatment": vid, "baseline": baseline, "metrics": {}}
        for m in metrics:
            b = {t: sum(v) / len(v) for t, v in by_task(baseline, m).items()}
            t = {k: sum(v) / len(v) for k, v in by_task(vid, m).items()}
            if not b or not t:
                continue
            d = paired_difference(b, t)
            entry["metrics"][m] = {
                "n_tasks": d.n_tasks,
                "mean_difference": d.mean_difference,
                "ci": [d.ci.low, d.ci.high],
                "ci_excludes_zero": d.ci.excludes_zero(),
            }
        # One trial per task: McNemar on pass/fail; with replications: the sign test on success rates
        # (a majority vote per task would hide a failing replication).
        b_runs, t_runs = by_task(baseline, "success"), by_task(vid, "success")
        bp = {k: sum(v) / len(v) for k, v in b_runs.items()}
        tp = {k: sum(v) / len(v) for k, v in t_runs.items()}
        replicated = any(len(v) > 1 for v in (*b_runs.values(), *t_runs.values()))
        mc = (
            sign_test(bp, tp)
            if replicated
            else mcnemar({k: v >= 1 for k, v in bp.items()}, {k: v >= 1 for k, v in tp.items()})
        )
        entry["pass_fail"] = {
            "test": mc.test,
            "n_tasks": mc.n_tasks,
            "baseline_only": mc.baseline_only,
            "treatment_only": mc.treatment_only,
            "p_value": mc.p_value,
        }
        comparisons.append(entry)
    result = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_dir.name,
        "baseline": baseline,
        "variants": variants,
        "comparisons": comparisons,
    }
    write_json(run_dir / "analysis" / "comparison.json", result)
    (run_dir / "analysis" / "report.md").write_text(report_md(result))
    return result


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x == x]
    return sum(xs) / len(xs) if xs else None


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def report_md(c: dict[str, Any]) -> str:
    lines = [
        f"# Run {c['run_id']}",
        "",
        "| variant | n | success | 95% CI | errors |",
        "|---|---|---|---|---|",
    ]
    for vid, v in c["variants"].items():
        lines.append(
            f"| {vid} | {v['n']} | {_pct(v['success_rate'])} | {_pct(v['success_ci'][0])} – "
            f"{_pct(v['success_ci'][1])} | {v['errors']} |"
        )
    for comp in c["comparisons"]:
        lines += [
            "",
            f"## {comp['treatment']} vs {comp['baseline']}",
            "",
            "| metric | tasks | mean difference | 95% bootstrap CI |",
            "|---|---|---|---|",
        ]
        for m, d in comp["metrics"].items():
            lines.append(
                f"| {m} | {d['n_tasks']} | {d['mean_difference']:+.4g} | "
                f"[{d['ci'][0]:+.4g}, {d['ci'][1]:+.4g}] |"
            )
        pf = comp["pass_fail"]
        lines.append(
            f"\nPass/fail by task ({pf['test']}): baseline-only {pf['baseline_only']}, "
            f"treatment-only {pf['treatment_only']}, p = {pf['p_value']:.3g}"
        )
    return "\n".join(lines) + "\n"
