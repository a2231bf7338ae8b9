"""``opslab serve``, ``opslab db …``, ``opslab version``, ``opslab demo``.

Heavy imports live inside the commands so that every ``opslab`` invocation starts fast.
"""

from __future__ import annotations

import gc
from typing import Annotated

import typer

from opslab import __version__
from opslab.cli.context import console, err_console, settings
from opslab.credentials import is_loopback
from opslab.errors import InvalidInput

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the HTTP service (migrations are applied on start)."""
    s = settings()  # a refused setting stops here, before the service's imports
    short = s.short_credentials()
    if short and not is_loopback(host):
        variable, _, why = short[0].partition(": ")
        raise InvalidInput.for_field(variable, f"{why} (this service binds {host}, beyond loopback)")
    for line in short:
        err_console.print(f"warning: {line} — fine on loopback, refused in production or beyond it")
    import uvicorn

    from opslab.api import create_app

    app = create_app(s)
    # Everything built so far (modules, the app, the runtime) lives as long as the process: out of the
    # cyclic collector's sight, so a collection during a large batch walks only the batch's objects
    # (full collections over the start-up heap cost batch ingest more than its validation).
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


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

    if not run_demo(settings(), console, port=port, keep_running=keep_running):
        raise typer.Exit(1)
