"""The ``opslab`` command line (Typer + Rich). ``main`` builds only the commands it runs (see ``app``), once
the start-up's code cache is in place (``codecache``): Typer's own imports are among what it keeps."""

from __future__ import annotations

import sys
from typing import Any

from opslab.cli import codecache

# The service's commands, beside the capabilities' (``app.build_app``).
ROOT_COMMANDS = ("serve", "version", "demo", "db", "worker")


def main() -> None:
    codecache.install(cache_name(sys.argv[1] if len(sys.argv) > 1 else ""))
    from opslab.cli.app import main as run

    run()


def lab_main() -> None:
    """The seed's ``lab`` command: ``opslab lab`` under its own name (``lab run …``, ``./lab run …``)."""
    codecache.install("lab")
    from opslab.cli.app import lab_main as run

    run()


def cache_name(command: str) -> str:
    """The code cache's file for ``opslab COMMAND …``: each capability's and each of the service's commands
    its own (``opslab lab run`` loads what the lab's commands compile, not what the service's thousand
    classes do), every other word the whole app's."""
    from opslab.capabilities import CAPABILITIES

    named = {name for cap in CAPABILITIES for name, _ in cap.cli}
    return command if command in named or command in ROOT_COMMANDS else "opslab"


def __getattr__(name: str) -> Any:
    if name == "build_app":  # the whole app, for what documents or tests it: imports Typer
        from opslab.cli.app import build_app

        return build_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["build_app", "cache_name", "lab_main", "main"]
