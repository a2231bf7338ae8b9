"""``opslab serve``, ``opslab db …``, ``opslab version``."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from opslab import __version__
from opslab.cli.context import console, settings
from opslab.store import current_revision, head_revision, make_engine, upgrade

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the HTTP service (migrations are applied on start)."""
    from opslab.api import create_app

    app = create_app(settings())
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def version() -> None:
    """Print the version."""
    console.print(f"opslab {__version__}")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
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
    s = settings()
    engine = make_engine(s.resolved_database_url)
    try:
        console.print(f"current: {current_revision(engine)}  head: {head_revision()}")
    finally:
        engine.dispose()
