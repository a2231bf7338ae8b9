"""A run's analysis files: the tables in the seed's layout (JSONL + the DuckDB loader), the comparison of
its variants (``comparison.json``) and ``report.md``. The statistics and the error rule are in
``comparison``; every table and the comparison take a trial's values from ``trial_values``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from opslab.lab.artifacts import parse_model, write_model
from opslab.lab.comparison import (
    ERROR_RULE,
    Contrast,
    Kind,
    ObjectiveSpec,
    VariantSummary,
    contrast,
    metrics_to_compare,
    objective_of,
    score,
    summarise,
)
from opslab.lab.metric_kinds import metric_kinds
from opslab.lab.records import TrialRecord

COMPARISON_SCHEMA_VERSION = 2  # 2: errors count as failures in paired tests; interval methods per kind

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
        "failures": "BIGINT",
        "errors": "BIGINT",
        "success_rate": "DOUBLE",
        "error_rate": "DOUBLE",
        "success_ci_low": "DOUBLE",
        "success_ci_high": "DOUBLE",
        "mean_duration_ms": "DOUBLE",
    },
}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    # pydantic's encoder: a row in a third of ``json.dumps``'s time (a run's tables hold thousands).
    path.write_bytes(b"".join([to_json(r, fallback=str) + b"\n" for r in rows]))


def load_outputs(run_dir: Path, trial_ids: list[str]) -> list[TrialRecord]:
    """The records of the trials that finished, in plan order."""
    return [record for record, _ in read_records(run_dir, trial_ids)]


def read_records(
    run_dir: Path, trial_ids: list[str], written: Mapping[str, bytes] | None = None
) -> list[tuple[TrialRecord, bytes]]:
    """The records of the trials that finished, in plan order, each with its file's bytes (read once:
    a run's analysis and attestation look at thousands). ``written``: files' bytes the caller has
    already (the trials the runner just ran), not read again."""
    trials = os.path.join(run_dir, "trials")
    records = []
    for tid in trial_ids:
        raw = written.get(tid) if written else None
        if raw is None:
            try:
                with open(os.path.join(trials, tid, "trial_output.json"), "rb") as f:
                    raw = f.read()
            except (FileNotFoundError, NotADirectoryError):
                continue
        records.append((parse_model(raw, TrialRecord, "trial_output.json"), raw))
    return records


def build_tables(run_dir: Path, outputs: list[TrialRecord], variant_order: list[str]) -> dict[str, int]:
    """The five tables and ``load_duckdb.sql`` under ``analysis/tables``; returns their row counts."""
    run_id = run_dir.name
    tables_dir = run_dir / "analysis" / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    scored = score(outputs)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    ev_variant: dict[tuple[str, str], int] = {}
    for o, values in scored:
        ids = {"run_id": run_id, "trial_id": o.trial_id, "variant_id": o.variant_id}
        rows["trials"].append(
            {
                **ids,
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
        where = {**ids, "task_id": o.task_id, "replication": o.replication}
        rows["metrics_long"] += [{**where, "metric": m, "value": v} for m, v in values.items()]
        for kind, n in o.event_counts.items():
            rows["event_counts_by_trial"].append({**ids, "event_type": kind, "count": n})
            ev_variant[(o.variant_id, kind)] = ev_variant.get((o.variant_id, kind), 0) + n
    rows["event_counts_by_variant"] = [
        {"run_id": run_id, "variant_id": v, "event_type": k, "count": n}
        for (v, k), n in sorted(ev_variant.items())
    ]
    for vid in variant_order:
        mine = [t for t in scored if t[0].variant_id == vid]
        s = summarise(mine, [], {})
        durations = [o.duration_ms for o, _ in mine]
        rows["variant_summary"].append(
            {
                "run_id": run_id,
                "variant_id": vid,
                "n": s.n,
                "successes": s.successes,
                "failures": s.failures,
                "errors": s.errors,
                "success_rate": s.success_rate,
                "error_rate": s.error_rate,
                "success_ci_low": s.success_ci[0],
                "success_ci_high": s.success_ci[1],
                "mean_duration_ms": sum(durations) / len(durations) if durations else None,
            }
        )
    for name, data in rows.items():
        _jsonl(tables_dir / f"{name}.jsonl", data)
    (tables_dir / "load_duckdb.sql").write_text(load_sql())
    return {name: len(data) for name, data in rows.items()}


def load_sql(tables: str = "tables") -> str:
    """DDL + load for DuckDB. The written file reads ``tables/<name>.jsonl``: run it from the run's
    ``analysis/`` folder, as the seed does; ``tables`` gives another folder (``opslab lab query``)."""
    folder = tables.replace("'", "''")
    lines = [
        "-- Load this run's analysis tables: cd .lab/runs/<run_id>/analysis && duckdb agentlab.duckdb < "
        "tables/load_duckdb.sql"
    ]
    for name, cols in TABLES.items():
        spec = ", ".join(f"'{c}': '{t}'" for c, t in cols.items())
        lines.append(
            f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_json('{folder}/{name}.jsonl', "
            f"format = 'newline_delimited', columns = {{{spec}}});"
        )
    return "\n".join(lines) + "\n"


class Comparison(BaseModel):
    """``analysis/comparison.json``: every variant summarised, each treatment against the baseline."""

    schema_version: int = COMPARISON_SCHEMA_VERSION
    run_id: str
    baseline: str
    error_rule: str = ERROR_RULE
    metric_kinds: dict[str, Kind]
    objective: ObjectiveSpec | None = None
    variants: dict[str, VariantSummary]
    comparisons: list[Contrast]
    warnings: list[str] = []


def compare_variants(
    run_id: str,
    outputs: list[TrialRecord],
    variant_order: list[str],
    metrics: list[str],
    declared: Mapping[str, Kind] | None = None,
) -> Comparison:
    """The comparison of a run's variants (pure): the configured metrics plus any trainer fields, each
    of the kind ``declared`` (``analysis.metric_kinds``) or its values show."""
    scored = score(outputs)
    metrics = metrics_to_compare(outputs, metrics)
    objective, warnings = objective_of(outputs)
    kinds, notes = metric_kinds(scored, [*metrics, *(["objective"] if objective else [])], declared)
    warnings += notes
    warnings += [f"no trial reports the metric {m!r}" for m in metrics if not any(m in v for _, v in scored)]
    groups = {vid: [t for t in scored if t[0].variant_id == vid] for vid in variant_order}
    baseline = variant_order[0]
    return Comparison(
        run_id=run_id,
        baseline=baseline,
        metric_kinds={m: kinds[m] for m in metrics},
        objective=objective,
        variants={vid: summarise(groups[vid], metrics, kinds) for vid in variant_order},
        comparisons=[
            contrast((baseline, vid), groups[baseline], groups[vid], metrics, kinds, objective)
            for vid in variant_order[1:]
        ],
        warnings=warnings,
    )


def compare(
    run_dir: Path,
    outputs: list[TrialRecord],
    variant_order: list[str],
    metrics: list[str],
    declared: Mapping[str, Kind] | None = None,
) -> dict[str, Any]:
    """Write ``analysis/comparison.json`` and ``analysis/report.md``; return the comparison as written."""
    result = compare_variants(run_dir.name, outputs, variant_order, metrics, declared)
    write_model(run_dir / "analysis" / "comparison.json", result)
    (run_dir / "analysis" / "report.md").write_text(report_md(result))
    return result.model_dump(mode="json")


def format_rate(x: float | None) -> str:
    """A rate as the report and the CLI show it (``83.3%``; ``—`` when there is none)."""
    return "—" if x is None else f"{100 * x:.1f}%"


def format_value(x: float, kind: Kind | str, signed: bool = False) -> str:
    """A metric value (or, ``signed``, a difference: percentage points for rates)."""
    if kind == "rate":
        return f"{100 * x:+.1f} pp" if signed else f"{100 * x:.1f}%"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def format_interval(ci: tuple[float, float] | None, kind: Kind | str, signed: bool = False) -> str:
    if ci is None:
        return "—"
    return f"[{format_value(ci[0], kind, signed)}, {format_value(ci[1], kind, signed)}]"


# Short names for the report's long table rows.
_pct, _num, _ci = format_rate, format_value, format_interval


def report_md(c: Comparison) -> str:
    """``report.md``: the variants (errors in their own column), their metrics, each comparison."""
    lines = [f"# Run {c.run_id}", "", f"Errors: {c.error_rule}.", ""]
    lines += ["| variant | n | success | 95% CI | failures | errors |", "|---|---|---|---|---|---|"]
    for vid, v in c.variants.items():
        lines.append(
            f"| {vid} | {v.n} | {_pct(v.success_rate)} | {_pct(v.success_ci[0])} – {_pct(v.success_ci[1])} "
            f"| {v.failures} | {v.errors} |"
        )
    lines += ["", "| variant | metric | mean | 95% CI | n | method |", "|---|---|---|---|---|---|"]
    for vid, v in c.variants.items():
        for m, s in v.metrics.items():
            lines.append(
                f"| {vid} | {m} | {_num(s.mean, s.kind)} | {_ci(s.ci, s.kind)} | {s.n} | {s.method} |"
            )
    for comp in c.comparisons:
        lines += [
            "",
            f"## {comp.treatment} vs {comp.baseline}",
            "",
            f"Errors: {comp.baseline} {comp.baseline_errors}, {comp.treatment} {comp.treatment_errors}.",
            "",
            "| metric | tasks | baseline | treatment | difference | 95% CI | method |",
            "|---|---|---|---|---|---|---|",
        ]
        for m, d in comp.metrics.items():
            lines.append(
                f"| {m} | {d.n_tasks} | {_num(d.baseline_mean, d.kind)} | {_num(d.treatment_mean, d.kind)} | "
                f"{_num(d.mean_difference, d.kind, True)} | {_ci(d.ci, d.kind, True)} | {d.method} |"
            )
        pf = comp.pass_fail
        lines.append(
            f"\nPass/fail by task ({pf.test}): baseline-only {pf.baseline_only}, "
            f"treatment-only {pf.treatment_only}, p = {pf.p_value:.3g}"
        )
        if (o := comp.objective) is not None:
            lines.append(
                f"\nObjective {o.name} ({o.direction}): {o.better} better"
                if o.better != "inconclusive"
                else f"\nObjective {o.name} ({o.direction}): inconclusive"
            )
            lines[-1] += f", improvement {o.improvement:+.4g} {_ci(o.improvement_ci, 'mean', True)}"
    if c.warnings:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in c.warnings)]
    return "\n".join(lines) + "\n"


__all__ = ["TABLES", "Comparison", "build_tables", "compare", "compare_variants", "load_outputs", "load_sql"]
