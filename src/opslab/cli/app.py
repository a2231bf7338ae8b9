"""The ``opslab`` command: one Typer app, one mapping from the exception tree to exit codes."""

from __future__ import annotations

import json
import sys

import typer
from rich.markup import escape

from opslab.capabilities import CAPABILITIES, load
from opslab.cli import core, jobs, serve
from opslab.cli.context import err_console, print_json
from opslab.cli.lab_commands import lab_app
from opslab.errors import InvalidInput, OpslabError

app = typer.Typer(
    name="opslab",
    help="The operations lab for AI agents and the services they run on.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(serve.serve)
app.command()(core.version)
app.command()(core.demo)
app.add_typer(core.db_app, name="db")
app.command()(jobs.worker)
# Each capability's commands, as opslab.capabilities declares them (their modules import little at load:
# a command imports its engine when it runs).
for _cap in CAPABILITIES:
    for _name, _ref in _cap.cli:
        _commands = load(_ref)
        if not isinstance(_commands, typer.Typer):
            raise TypeError(f"{_cap.name}: {_ref} is not a Typer app")
        app.add_typer(_commands, name=_name)


def main() -> None:
    _main(app, lab_envelope=sys.argv[1:2] == ["lab"])


def lab_main() -> None:
    """The seed's ``lab`` command: ``opslab lab`` under its own name (``lab run …``, ``./lab run …``)."""
    _main(lab_app, prog_name="lab", lab_envelope=True)


def _main(command: typer.Typer, *, prog_name: str | None = None, lab_envelope: bool) -> None:
    as_json = "--json" in sys.argv[1:]
    try:
        if not as_json:
            command(prog_name=prog_name)
            return
        # In JSON mode a usage error (an unknown option, a missing argument) is an envelope too.
        code = command(prog_name=prog_name, standalone_mode=False)
        raise SystemExit(code if isinstance(code, int) else 0)
    except typer.TyperException as exc:  # the command line itself (typer's own click raises these)
        report_usage_error(exc, lab_envelope=lab_envelope)
        raise SystemExit(exc.exit_code) from None
    except OpslabError as exc:
        report_error(exc, as_json=as_json)
        raise SystemExit(exc.exit_code) from None
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted")
        raise SystemExit(130) from None


def report_usage_error(exc: typer.TyperException, *, lab_envelope: bool) -> None:
    """A usage error as the JSON the command would have printed: the lab's ``{"ok": false, "command",
    "error"}`` envelope (code ``invalid_input``, the option or argument as the field), else the API's."""
    param = getattr(exc, "param", None)
    opts = getattr(param, "opts", None) or []
    if getattr(param, "param_type_name", "") == "argument":  # named as its help shows it: EXPERIMENT
        opts = [str(getattr(param, "name", "") or "").upper()]
    field = getattr(exc, "option_name", None) or (opts[0] if opts else None)
    error = InvalidInput.for_field(str(field or "command line"), exc.format_message())
    if not lab_envelope:
        report_error(error, as_json=True)
        return
    ctx = getattr(exc, "ctx", None)
    name = getattr(ctx, "info_name", None) or "lab"
    typer.echo(json.dumps({"ok": False, "command": name, "error": error.to_dict()}))


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
