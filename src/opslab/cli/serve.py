"""``opslab serve``: the HTTP service, its start-up lines (which settings file, whether an LLM is on) and
its listening socket, bound before anything else so that a port in use is one clear line."""

from __future__ import annotations

import copy
import errno
import logging
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from opslab.cli.context import err_console, settings
from opslab.cli.startup import setting_up
from opslab.credentials import is_loopback
from opslab.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from opslab.config import Settings

log = logging.getLogger("opslab")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port to listen on (default: OPSLAB_PORT or PORT, else 8000)."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="critical | error | warning | info | debug | trace (default: OPSLAB_LOG_LEVEL or "
            "LOG_LEVEL, else info)."
        ),
    ] = None,
) -> None:
    """Run the HTTP service (migrations are applied on start)."""
    s = settings()  # a refused setting stops here, before the service's imports
    weak = s.weak_credentials()
    if weak and not is_loopback(host):
        variable, _, why = weak[0].partition(": ")
        raise InvalidInput.for_field(variable, f"{why} (this service binds {host}, beyond loopback)")
    for line in weak:
        err_console.print(f"warning: {line} — fine on loopback, refused in production or beyond it")
    level = (log_level or s.log_level).strip().lower()
    if level not in LOG_LEVELS:
        raise InvalidInput.for_field("--log-level", f"{log_level!r}: expected one of {', '.join(LOG_LEVELS)}")
    listening = bind(host, port or s.port)

    # Everything built here (modules, the app, the runtime) lives as long as the process: made with the
    # collector paused, then frozen out of its sight, so a collection during a large batch walks only the
    # batch's objects (full collections over the start-up heap cost batch ingest more than its validation).
    with setting_up():
        import uvicorn

        from opslab.api import create_app, settle_routes
        from opslab.store import upgrade
        from opslab.telemetry import load_messages

        app = create_app(s, migrate=False)
        settle_routes(app)  # built here, not while the first requests wait
        load_messages()  # so are the OTLP messages, before the sidecar is forked (the app's start)
        # Migrated here, not in the app's start-up: an unreachable database is one line, not a traceback.
        upgrade(app.state.runtime.engine)
        config = uvicorn.Config(
            app,
            host=host,
            port=port or s.port,
            log_level=level,
            log_config=log_config(level),
            access_log=False,
        )
    for level_no, line in startup_lines(s):
        log.log(level_no, line)
    shown = f"[{host}]" if ":" in host else host
    log.info(f"opslab: serving http://{shown}:{port or s.port} (dashboard /ui, API docs /docs; Ctrl-C stops)")
    uvicorn.Server(config).run(sockets=[listening])


def bind(host: str, port: int) -> socket.socket:
    """The service's listening socket, bound as uvicorn would; a port in use is a ``Conflict`` saying so."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(
                f"port {port} on {host} is already in use (another `opslab serve`?): stop that process, or "
                "choose another port with --port (or OPSLAB_PORT)",
                details={"host": host, "port": port},
            ) from None
        raise InvalidInput.for_field(
            "--host", f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)
    return sock


def log_config(level: str) -> dict[str, object]:
    """uvicorn's logging configuration with opslab's own loggers beside its, at the same level."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    loggers = config["loggers"]
    assert isinstance(loggers, dict)
    loggers["opslab"] = {
        "handlers": ["default"],
        "level": "DEBUG" if level == "trace" else level.upper(),
        "propagate": False,
    }
    return config


def startup_lines(s: Settings) -> list[tuple[int, str]]:
    """What a user needs to know before the first request: where the settings came from and whether an LLM
    will be called (never the key)."""
    lines: list[tuple[int, str]] = []
    if s.env_file is not None:
        lines.append(
            (logging.INFO, f"opslab: settings from {s.env_file} (environment variables win over it)")
        )
    else:
        lines.append((logging.INFO, "opslab: no .env file read (settings from the environment only)"))
    endpoint = s.llm_endpoint()
    if s.llm_key_is_placeholder():
        lines.append(
            (
                logging.WARNING,
                "opslab: the LLM key (OPENAI_API_KEY / OPSLAB_LLM_API_KEY) is a placeholder, not a key: "
                + ("the endpoint is called without one" if endpoint else "LLM off"),
            )
        )
    if endpoint is None:
        lines.append(
            (
                logging.INFO,
                "opslab: LLM off (set OPENAI_API_KEY, or OPSLAB_LLM_BASE_URL for another endpoint)",
            )
        )
    else:
        lines.append((logging.INFO, f"opslab: LLM on: model {endpoint.model} at {endpoint.base_url}"))
    return lines
