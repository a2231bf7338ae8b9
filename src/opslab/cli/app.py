"""The ``opslab`` command: one Typer app, one mapping from the exception tree to exit codes.

``opslab CAPABILITY …`` (``opslab lab run``, ``opslab canary run`` …) builds that capability's commands
alone: the whole app — every other command's module imported and its options read by Typer — is built
only for the commands of the service itself and for ``opslab --help``."""

from __future__ import annotations

import copy
import functools
import gc
import json
import sys

import typer
from typer.main import get_command_name
from typer.models import CommandInfo

from opslab.capabilities import CAPABILITIES, load
from opslab.cli.context import err_console, print_json
from opslab.cli.startup import without_pydantic_plugins
from opslab.errors import InvalidInput, OpslabError


def main() -> None:
    # Start-up (imports, the command tree) makes many objects and no garbage: the cyclic GC walking them
    # again and again cost a tenth of it. Collected again once the command runs (``_root``).
    gc.disable()
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    ref = _capability_commands().get(name)
    without_pydantic_plugins()
    if ref is None:
        command = build_app()
    else:  # the same root, holding this capability's commands alone (the one named, when one is)
        command = _root()
        command.add_typer(_named(_typer_app(ref), sys.argv[2:3]), name=name)
    _main(command, lab_envelope=name == "lab")


def lab_main() -> None:
    """The seed's ``lab`` command: ``opslab lab`` under its own name (``lab run …``, ``./lab run …``)."""
    without_pydantic_plugins()
    # Whole: on its own, a Typer of one command and no callback would be that command, not a group.
    _main(_typer_app(_capability_commands()["lab"]), prog_name="lab", lab_envelope=True)


@functools.cache
def build_app() -> typer.Typer:
    """The whole ``opslab`` app: the service's commands and every capability's."""
    from opslab.cli import core, jobs, serve

    whole = _root()
    whole.command()(serve.serve)
    whole.command()(core.version)
    whole.command()(core.demo)
    whole.add_typer(core.db_app, name="db")
    whole.command()(jobs.worker)
    # Each capability's commands, as opslab.capabilities declares them (their modules import little at
    # load: a command imports its engine when it runs).
    for name, ref in _capability_commands().items():
        whole.add_typer(_typer_app(ref), name=name)
    return whole


def _root() -> typer.Typer:
    root = typer.Typer(
        name="opslab",
        help="The operations lab for AI agents and the services they run on.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @root.callback()
    def started() -> None:
        gc.enable()

    return root


def _capability_commands() -> dict[str, str]:
    """Command name under ``opslab`` -> ``module:attribute`` of its Typer app."""
    return {name: ref for cap in CAPABILITIES for name, ref in cap.cli}


def _typer_app(ref: str) -> typer.Typer:
    commands = load(ref)
    if not isinstance(commands, typer.Typer):
        raise TypeError(f"{ref} is not a Typer app")
    return commands


def _named(commands: typer.Typer, word: list[str]) -> typer.Typer:
    """``commands`` (a group under the root) holding only the command ``word`` names, when it names one of
    them: Typer reads every command's options when it builds a group (~25 ms for the lab's 19, on every
    ``opslab lab run``). The group's help, an unknown command and a group of groups get the whole set."""
    if commands.registered_groups or not word:
        return commands
    named = [c for c in commands.registered_commands if _command_name(c) == word[0]]
    if len(named) != 1:
        return commands
    one = copy.copy(commands)
    one.registered_commands = named
    return one


def _command_name(info: CommandInfo) -> str | None:
    """The name Typer gives a registered command: its own, else its function's (``get_command_name``)."""
    if info.name:
        return info.name
    return get_command_name(info.callback.__name__) if info.callback is not None else None


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
    from rich.markup import escape

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
