"""Analysis tables (the seed's JSONL + DuckDB loader) and a statistical comparison of the variants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opslab.judge import (
    clustered_mean_interval,
    mcnemar,
    paired_difference,
    pass_at_k,
    t_interval,
    wilson_interval,
)
from opslab.lab.artifacts import SCHEMA_VERSION, read_json, write_json

TABLES: dict[str, dict[str, str]] = {
    "trials": {
        "run_id": "VARCHAR",
        "trial_id": "VARCHAR",
        "variant_id": "VARCHAR",
        "task_id": "VARCHAR",
        "replication": "INTEGER",
        "seed": "BIGINT",
        "outcome": "VARCHAR",
        "duration_ms": "DOUBLE",
        "exit_code": "INTEGER",
        "attempt": "INTEGER",
        "error": "VARCHAR",
    },
    "metrics_long": {
        "run_id": "VARCHAR",
        "trial_id": "VARCHAR",
        "variant_id": "VARCHAR",
        "task_id": "VARCHAR",
        "replication": "INTEGER",
        "metric": "VARCHAR",
        "value": "DOUBLE",
    },
    "event_counts_by_trial": {
        "run_id": "VARCHAR",
        "trial_id": "VARCHAR",
        "variant_id": "VARCHAR",
        "event_type": "VARCHAR",
        "count": "BIGINT",
    },
    "event_counts_by_variant": {
        "run_id": "VARCHAR",
        "variant_id": "VARCHAR",
        "event_type": "VARCHAR",
        "count": "BIGINT",
    },
    "variant_summary": {
        "run_id": "VARCHAR",
        "variant_id": "VARCHAR",
        "n": "BIGINT",
        "successes": "BIGINT",
        "errors": "BIGINT",
        "success_rate": "DOUBLE",
        "success_ci_low": "DOUBLE",
        "success_ci_high": "DOUBLE",
        "mean_duration_ms": "DOUBLE",
    },
}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))


def load_outputs(run_dir: Path, trial_ids: list[str]) -> list[dict[str, Any]]:
    return [
        read_json(run_dir / "trials" / tid / "trial_output.json")
        for tid in trial_ids
        if (run_dir / "trials" / tid / "trial_output.json").is_file()
    ]


def build_tables(run_dir: Path, outputs: list[dict[str, Any]], variant_order: list[str]) -> dict[str, int]:
    run_id = run_dir.name
    tables_dir = run_dir / "analysis" / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    trials, metrics, ev_trial = [], [], []
    ev_variant: dict[tuple[str, str], int] = {}
    for o in outputs:
        error = o.get("error")
        trials.append(
            {
                "run_id": run_id,
                **{
                    k: o.get(k)
                    for k in (
                        "trial_id",
                        "variant_id",
                        "task_id",
                        "replication",
                        "seed",
                        "outcome",
                        "duration_ms",
                        "exit_code",
                        "attempt",
                    )
                },
                "error": error if isinstance(error, str) or error is None else json.dumps(error),
            }
        )
        values = {
            "success": 1.0 if o["outcome"] == "success" else 0.0,
            **{k: float(v) for k, v in (o.get("metrics") or {}).items() if isinstance(v, int | float)},
        }
        for name, value in values.items():
            metrics.append(
                {
                    "run_id": run_id,
                    "trial_id": o["trial_id"],
                    "variant_id": o["variant_id"],
                    "task_id": o["task_id"],
                    "replication": o["replication"],
                    "metric": name,
                    "value": value,
                }
            )
        for kind, n in (o.get("event_counts") or {}).items():
            ev_trial.append(
                {
                    "run_id": run_id,
                    "trial_id": o["trial_id"],
                    "variant_id": o["variant_id"],
                    "event_type": kind,
                    "count": n,
                }
            )
            key = (o["variant_id"], kind)
            ev_variant[key] = ev_variant.get(key, 0) + n
    summary = []
    for vid in variant_order:
        mine = [o for o in outputs if o["variant_id"] == vid]
        wins = sum(1 for o in mine if o["outcome"] == "success")
        ci = wilson_interval(wins, len(mine))
        durations = [float(o.get("duration_ms") or 0) for o in mine]
        summary.append(
            {
                "run_id": run_id,
                "variant_id": vid,
                "n": len(mine),
                "successes": wins,
                "errors": sum(1 for o in mine if o["outcome"] == "error"),
                "success_rate": wins / len(mine) if mine else None,
                "success_ci_low": ci.low,
                "success_ci_high": ci.high,
                "mean_duration_ms": sum(durations) / len(durations) if durations else None,
            }
        )
    rows = {
        "trials": trials,
        "metrics_long": metrics,
        "event_counts_by_trial": ev_trial,
        "event_counts_by_variant": [
            {"run_id": run_id, "variant_id": v, "event_type": k, "count": n}
            for (v, k), n in sorted(ev_variant.items())
        ],
        "variant_summary": summary,
    }
    for name, data in rows.items():
        _jsonl(tables_dir / f"{name}.jsonl", data)
    (tables_dir / "load_duckdb.sql").write_text(load_sql())
    return {name: len(data) for name, data in rows.items()}


def load_sql() -> str:
    """DDL + load for DuckDB, run from the run's ``analysis/`` folder (as the seed shows)."""
    lines = [
        "-- Load this run's analysis tables: cd .lab/runs/<run_id>/analysis && duckdb agentlab.duckdb < "
        "tables/load_duckdb.sql"
    ]
    for name, cols in TABLES.items():
        spec = ", ".join(f"'{c}': '{t}'" for c, t in cols.items())
        lines.append(
            f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_json('tables/{name}.jsonl', "
            f"format = 'newline_delimited', columns = {{{spec}}});"
        )
    return "\n".join(lines) + "\n"


def compare(
    run_dir: Path, outputs: list[dict[str, Any]], variant_order: list[str], metrics: list[str]
) -> dict[str, Any]:
    baseline = variant_order[0]

    def by_task(vid: str, metric: str) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for o in outputs:
            if o["variant_id"] != vid or o["outcome"] == "error":
                continue
            value = (
                1.0
                if metric == "success" and o["outcome"] == "success"
                else (0.0 if metric == "success" else (o.get("metrics") or {}).get(metric))
            )
            if isinstance(value, int | float):
                out.setdefault(o["task_id"], []).append(float(value))
        return out

    variants: dict[str, Any] = {}
    for vid in variant_order:
        mine = [o for o in outputs if o["variant_id"] == vid]
        wins = sum(1 for o in mine if o["outcome"] == "success")
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
            "errors": sum(1 for o in mine if o["outcome"] == "error"),
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
        bp = {k: (sum(v) / len(v)) >= 0.5 for k, v in by_task(baseline, "success").items()}
        tp = {k: (sum(v) / len(v)) >= 0.5 for k, v in by_task(vid, "success").items()}
        mc = mcnemar(bp, tp)
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
