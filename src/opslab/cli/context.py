"""What every command shares: settings (built once, lazily), consoles, the service client or local runtime."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from opslab.config import Settings
    from opslab.runtime import Runtime


class LazyConsole:
    """A Rich console made on first use: a command that prints JSON (``--json``) never loads Rich, a
    fifth of a short command's start-up. Everything else is the console's own."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr

    @functools.cached_property
    def rich(self) -> Console:
        from rich.console import Console

        return Console(stderr=self._stderr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich, name)


console = LazyConsole()
err_console = LazyConsole(stderr=True)


def escape(text: str) -> str:
    """``rich.markup.escape``, loaded with Rich when a console first prints."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


@functools.cache
def settings() -> Settings:
    # Imported here: pydantic-settings costs every CLI start ~0.1 s, and commands like `lab` never need it.
    from opslab.config import Settings

    return Settings.load()


def local_runtime(s: Settings | None = None, *, all_work: bool = False) -> Runtime:
    """The runtime of a command that works on this data dir's database (migrated first): its imports and
    wiring made with the cyclic GC paused (``startup.setting_up``), a fifth of such a command's CPU.
    ``all_work``: every kind of work made now too (a process that runs jobs), not when first asked for."""
    from opslab.cli.startup import setting_up

    with setting_up():
        from opslab.runtime import Runtime

        rt = Runtime.build(s or settings(), migrate=True)
        if all_work:
            rt.works.load()
        return rt


def service_url() -> str | None:
    """The service URL of the settings (``OPSLAB_URL``), or None; the settings are not built when nothing
    could set it (a lab run without reporting is spared loading them)."""
    from opslab.config_sources import may_be_set

    return settings().url if may_be_set("OPSLAB_URL") else None


UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Service URL (default: OPSLAB_URL); without one, the local database is used."),
]
# For commands that act on a running service only (an RCA job, the responder's kill switch): no local
# fallback, and the help says so.
ServiceUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="Service URL (default: OPSLAB_URL). Required: this acts on a running `opslab serve`."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def print_json(data: Any) -> None:
    # Plain print: machine output must not be re-wrapped or highlighted by Rich.
    typer.echo(json.dumps(data, indent=2, default=str))
