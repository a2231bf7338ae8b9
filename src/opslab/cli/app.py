"""The ``opslab`` command: one Typer app, one mapping from the exception tree to exit codes."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from opslab.cli import (
    autoops,
    canary,
    core,
    jobs,
    kb,
    lab,
    lab_analysis,  # noqa: F401  (adds compare and query to `opslab lab`)
    lab_control,  # noqa: F401  (adds replay, fork, pause, resume, publish, validate-* to `opslab lab`)
    lab_knobs,  # noqa: F401  (adds knobs-init and knobs-validate to `opslab lab`)
    rca,
    responder,
    runs,
    sandbox,
)
from opslab.cli.context import err_console, print_json
from opslab.errors import OpslabError

app = typer.Typer(
    name="opslab",
    help="The operations lab for AI agents and the services they run on.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(core.serve)
app.command()(core.version)
app.command()(core.demo)
app.add_typer(core.db_app, name="db")
app.add_typer(runs.runs_app, name="runs")
app.add_typer(runs.metrics_app, name="metrics")
app.command()(jobs.worker)
app.add_typer(rca.rca_app, name="rca")
app.add_typer(lab.lab_app, name="lab")
app.add_typer(canary.canary_app, name="canary")
app.add_typer(sandbox.sandbox_app, name="sandbox")
app.add_typer(kb.kb_app, name="kb")
app.add_typer(responder.responder_app, name="responder")
app.add_typer(autoops.autoops_app, name="autoops")


def main() -> None:
    try:
        app()
    except OpslabError as exc:
        report_error(exc, as_json="--json" in sys.argv[1:])
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise SystemExit(130) from None


def report_error(exc: OpslabError, *, as_json: bool) -> None:
    """``--json``: the API's error envelope on stdout, every field error in it; otherwise every field
    error on its own line (not the first one and "and 4 more")."""
    if as_json:
        print_json({"error": {"code": exc.code, "message": exc.message, "details": exc.details}})
        return
    fields = exc.details.get("errors") if isinstance(exc.details, dict) else None
    if isinstance(fields, list) and len(fields) > 1:
        err_console.print(
            f"[red]error[/red] {escape(f'[{exc.code}] {len(fields)} problems:')}", highlight=False
        )
        for f in fields:
            line = f"  - {f.get('field')}: {f.get('message')}" if isinstance(f, dict) else f"  - {f}"
            err_console.print(escape(line), highlight=False, soft_wrap=True)
        return
    err_console.print(
        f"[red]error[/red] {escape(f'[{exc.code}] {exc.message}')}", highlight=False, soft_wrap=True
    )
