"""``opslab lab compare RUN_A RUN_B`` and ``opslab lab query RUN_DIR SQL``: a finished run's analysis.

The use cases are ``opslab.lab.compare_run_dirs`` and ``opslab.lab.query_run``; this module prints a Rich
table, or with ``--json`` exactly one envelope (``_emit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opslab.cli.context import console, err_console, escape
from opslab.cli.lab import JsonFlag, _emit, lab_app

if TYPE_CHECKING:
    from opslab.lab import RunsComparison

RunDirArg = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A run directory (.lab/runs/<run_id>).")]


def _print_comparison(c: RunsComparison) -> None:
    from rich.table import Table

    from opslab.cli.tables import Column, print_table
    from opslab.lab import format_interval, format_rate, format_value

    console.print(
        f"B = {escape(c.run_b)} against A = {escape(c.run_a)}: {c.shared_tasks} shared task(s), "
        "paired by task"
    )
    for pair in c.pairs:
        rows = []
        for side, vid, s in (("A", pair.variant_a, pair.a), ("B", pair.variant_b, pair.b)):
            lo, hi = s.success_ci
            rows.append(
                [
                    side,
                    vid,
                    str(s.n),
                    format_rate(s.success_rate),
                    f"{lo:.1%} – {hi:.1%}",
                    str(s.failures),
                    str(s.errors),
                ]
            )
        print_table(
            [
                Column("run", whole=True),
                Column("variant", key=True),
                Column("n", whole=True, justify="right"),
                Column("success", whole=True, justify="right"),
                Column("95% CI", whole=True, drop=1),
                Column("failures", whole=True, justify="right", drop=2),
                Column("errors", whole=True, justify="right"),
            ],
            rows,
            title=f"variant {escape(pair.variant_a)} (A) → {escape(pair.variant_b)} (B)",
        )
        table = Table()
        for col in ("metric", "tasks", "A", "B", "B − A", "95% CI", "method"):
            table.add_column(col)
        for m, d in pair.contrast.metrics.items():
            table.add_row(
                m,
                str(d.n_tasks),
                format_value(d.baseline_mean, d.kind),
                format_value(d.treatment_mean, d.kind),
                format_value(d.mean_difference, d.kind, True),
                format_interval(d.ci, d.kind, signed=True),
                d.method,
            )
        console.print(table)
        pf = pair.contrast.pass_fail
        console.print(
            f"pass/fail by task ({pf.test}): A only {pf.baseline_only}, B only {pf.treatment_only}, "
            f"p = {pf.p_value:.3g}"
        )
        if (o := pair.contrast.objective) is not None:
            verdict = {"treatment": "B is better", "baseline": "A is better"}.get(o.better, "inconclusive")
            console.print(
                f"objective {o.name} ({o.direction}): {verdict}, improvement {o.improvement:+.4g} "
                f"{format_interval(o.improvement_ci, 'mean', signed=True)}",
            )
    for w in c.warnings:
        err_console.print(f"[yellow]warning[/yellow]: {escape(w)}")
    if c.only_in_a or c.only_in_b:
        err_console.print(
            f"tasks only in A: {', '.join(c.only_in_a) or '—'}; only in B: {', '.join(c.only_in_b) or '—'}"
        )


@lab_app.command("compare")
def compare(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="The run to compare against (baseline).")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="The run compared (treatment).")],
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric", help="A metric to compare (repeatable; default: the runs' configured ones)."
        ),
    ] = None,
    variant: Annotated[
        str | None, typer.Option("--variant", help="Compare only this variant (default: every shared one).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Two runs over the same tasks (before/after a change), paired by task, with a run's own statistics."""
    from opslab.lab import compare_run_dirs

    def body() -> dict[str, Any]:
        result = compare_run_dirs(run_a, run_b, metrics=metric or None, variant=variant)
        if not as_json:
            _print_comparison(result)
        return {"comparison": result.model_dump(mode="json")}

    _emit("compare", as_json, body)


@lab_app.command("query")
def query(
    run_dir: RunDirArg,
    sql: Annotated[
        str, typer.Argument(metavar="SQL", help="SQL over trials, metrics_long, variant_summary, …")
    ],
    as_json: JsonFlag = False,
) -> None:
    """SQL over a run's analysis tables, in an in-memory DuckDB (no DuckDB CLI needed)."""
    from opslab.lab import query_run

    def body() -> dict[str, Any]:
        result = query_run(run_dir, sql)
        if not as_json:
            from opslab.cli.tables import Column, print_table

            # Columns named like ids (trial_id, task_id, run_id …) are printed whole; the rest fold.
            print_table(
                [Column(escape(col), key=_is_id(col)) for col in result.columns],
                [
                    [
                        "NULL" if v is None else (str(v) if _is_id(col) else escape(str(v)))
                        for col, v in zip(result.columns, row, strict=True)
                    ]
                    for row in result.rows
                ],
            )
            console.print(f"{len(result.rows)} row(s)")
        return {"columns": result.columns, "rows": result.records()}

    _emit("query", as_json, body)


def _is_id(column: str) -> bool:
    name = column.lower()
    return name == "id" or name.endswith("_id") or name in ("variant", "task", "trial")
