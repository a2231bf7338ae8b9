"""``opslab db …``, ``opslab version``, ``opslab demo`` (``opslab serve`` is in ``serve.py``).

Heavy imports live inside the commands so that every ``opslab`` invocation starts fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from opslab import __version__
from opslab.cli.context import console, settings

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def version() -> None:
    """Print the version."""
    console.print(f"opslab {__version__}")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from opslab.store import make_engine, upgrade

    s = settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(s.resolved_database_url)
    try:
        rev = upgrade(engine, revision)
    finally:
        engine.dispose()
    console.print(f"database at revision {rev} ({engine.url.render_as_string(hide_password=True)})")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one this version knows."""
    from opslab.store import current_revision, head_revision, make_engine

    s = settings()
    engine = make_engine(s.resolved_database_url)
    try:
        console.print(f"current: {current_revision(engine)}  head: {head_revision()}")
    finally:
        engine.dispose()


def demo(
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port for the service (default: free).")
    ] = None,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Keep the service and its dashboard (/ui) up until Ctrl-C.")
    ] = False,
) -> None:
    """Start the service on the embedded default, run every capability against it, stop cleanly."""
    from opslab.demo import run_demo

    if not run_demo(settings(), console.rich, port=port, keep_running=keep_running):
        raise typer.Exit(1)
