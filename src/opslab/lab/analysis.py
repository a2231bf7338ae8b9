"""Analysis tables in the seed's layout (JSONL + the DuckDB loader); the comparison is in ``comparison``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opslab.judge import wilson_interval
from opslab.lab.artifacts import read_model
from opslab.lab.comparison import compare
from opslab.lab.records import TrialRecord

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


def load_outputs(run_dir: Path, trial_ids: list[str]) -> list[TrialRecord]:
    """The records of the trials that finished, in plan order."""
    paths = (run_dir / "trials" / tid / "trial_output.json" for tid in trial_ids)
    return [read_model(p, TrialRecord) for p in paths if p.is_file()]


def build_tables(run_dir: Path, outputs: list[TrialRecord], variant_order: list[str]) -> dict[str, int]:
    run_id = run_dir.name
    tables_dir = run_dir / "analysis" / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    trials: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    ev_trial: list[dict[str, Any]] = []
    ev_variant: dict[tuple[str, str], int] = {}
    for o in outputs:
        trials.append(
            {
                "run_id": run_id,
                "trial_id": o.trial_id,
                "variant_id": o.variant_id,
                "task_id": o.task_id,
                "replication": o.replication,
                "seed": o.seed,
                "outcome": o.outcome,
                "duration_ms": o.duration_ms,
                "exit_code": o.exit_code,
                "attempt": o.attempt,
                "error": o.error if isinstance(o.error, str) or o.error is None else json.dumps(o.error),
            }
        )
        values = {
            "success": 1.0 if o.outcome == "success" else 0.0,
            **{k: float(v) for k, v in o.metrics.items() if isinstance(v, int | float)},
        }
        for name, value in values.items():
            metrics.append(
                {
                    "run_id": run_id,
                    "trial_id": o.trial_id,
                    "variant_id": o.variant_id,
                    "task_id": o.task_id,
                    "replication": o.replication,
                    "metric": name,
                    "value": value,
                }
            )
        for kind, n in o.event_counts.items():
            ev_trial.append(
                {
                    "run_id": run_id,
                    "trial_id": o.trial_id,
                    "variant_id": o.variant_id,
                    "event_type": kind,
                    "count": n,
                }
            )
            key = (o.variant_id, kind)
            ev_variant[key] = ev_variant.get(key, 0) + n
    summary = []
    for vid in variant_order:
        mine = [o for o in outputs if o.variant_id == vid]
        wins = sum(1 for o in mine if o.outcome == "success")
        ci = wilson_interval(wins, len(mine))
        durations = [o.duration_ms for o in mine]
        summary.append(
            {
                "run_id": run_id,
                "variant_id": vid,
                "n": len(mine),
                "successes": wins,
                "errors": sum(1 for o in mine if o.outcome == "error"),
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


__all__ = ["TABLES", "build_tables", "compare", "load_outputs", "load_sql"]
