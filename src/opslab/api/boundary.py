"""The service's edge, as pure ASGI middleware, outermost first:

- ``AccessLog``: one line per request on the ``opslab.access`` logger, as uvicorn writes them plus the
  duration (``127.0.0.1:52314 - "GET /agent-runs?limit=5 HTTP/1.1" 200 3.1ms``); secrets in the query are
  masked, a body is never logged.
- ``ErrorBoundary``: whatever escapes the app becomes the JSON error envelope with its status, and the
  connection stays usable (an exception that reaches uvicorn closes it after the 500); a client that went
  away is a debug line, not a traceback.
- ``Admission``: at most ``max_in_flight`` requests of this process at once; the next is a 503 with
  ``Retry-After`` at once, before it holds a thread or a database connection. Event streams and
  ``/healthz`` are not counted (they wait, they do not work).
- ``EdgeCheck``: a path or query value with a NUL (which no id or filter holds, and PostgreSQL refuses in
  text), or longer than any id or filter this service keeps, is a 422 naming it before any route or
  database sees it.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl

from pydantic_core import to_json
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opslab.api.errors import RETRY_AFTER_S, pool_exhausted, render_error
from opslab.api.ui.auth import is_ui
from opslab.errors import InvalidInput, OpslabError, Unavailable

access_log = logging.getLogger("opslab.access")
log = logging.getLogger("opslab.api")

# Longest path segment and query value accepted: ids are 200 characters at most, free-text filters 200,
# a page cursor 1,024.
MAX_SEGMENT_CHARS = 1024
MAX_QUERY_VALUE_CHARS = 4096
_SECRET_WORDS = ("token", "secret", "password", "passwd", "key", "auth", "session", "signature", "credential")


async def send_error(send: Send, exc: OpslabError, *, headers: dict[str, str] | None = None) -> None:
    body = to_json({"error": exc.to_dict()})
    extra = dict(headers or {})
    if exc.http_status == 503:
        extra.setdefault("retry-after", str(RETRY_AFTER_S))
    await send(
        {
            "type": "http.response.start",
            "status": exc.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in extra.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    def __init__(self, app: ASGIApp, *, enabled: bool = True) -> None:
        self.app, self.enabled = app, enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    '%s - "%s %s HTTP/%s" %s %.1fms',
                    _client(scope),
                    scope.get("method", ""),
                    _shown_path(scope),
                    scope.get("http_version", "1.1"),
                    status if status is not None else "-",  # "-": the client left before an answer
                    (time.perf_counter() - start) * 1000,
                )


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def _shown_path(scope: Scope) -> str:
    path = scope.get("path", "")
    raw = scope.get("query_string", b"").decode("latin-1")
    if not raw:
        return str(path)
    shown = []
    for part in raw.split("&"):
        name, eq, _ = part.partition("=")
        masked = eq and any(w in name.lower() for w in _SECRET_WORDS)
        shown.append(f"{name}=***" if masked else part)
    return f"{path}?{'&'.join(shown)}"


class ErrorBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def noting(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, noting)
        except ClientDisconnect:
            log.debug("client went away during %s %s", scope.get("method"), scope.get("path"))
        except Exception as exc:  # the boundary: every failure ends here as an answer
            err = as_error(exc, scope)
            if started:  # half an answer is out: nothing to do but end it
                log.error(
                    "error after the answer began on %s %s: %r", scope.get("method"), scope.get("path"), exc
                )
                return
            await send_error(send, err)


def as_error(exc: Exception, scope: Scope) -> OpslabError:
    """The envelope's error for anything that escaped the app's own handlers."""
    if isinstance(exc, OpslabError):
        return exc
    if isinstance(exc, PoolTimeout):
        log.warning("no database connection free for %s %s", scope.get("method"), scope.get("path"))
        return pool_exhausted()
    log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
    return OpslabError("internal error; see the service log")


class Admission:
    def __init__(self, app: ASGIApp, *, max_in_flight: int) -> None:
        self.app, self.max_in_flight = app, max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _uncounted(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await send_error(
                send,
                Unavailable(
                    f"this service process is at its {self.max_in_flight} requests in flight "
                    "(OPSLAB_MAX_IN_FLIGHT); retry shortly",
                    details={"reason": "overloaded", "max_in_flight": self.max_in_flight},
                ),
            )
            return
        self.in_flight += 1  # one event loop per process: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _uncounted(path: str) -> bool:
    return path == "/healthz" or path.endswith("/stream")


class EdgeCheck:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = refused_input(scope)
            if refused is not None:
                if is_ui(scope.get("path", "")):  # a dashboard page's error is a page, as everywhere
                    await render_error(Request(scope, receive), refused)(scope, receive, send)
                    return
                await send_error(send, refused)
                return
        await self.app(scope, receive, send)


def refused_input(scope: Scope) -> InvalidInput | None:
    """Why the request's path or query cannot be what any route takes, or None."""
    path: str = scope.get("path", "")
    if "\x00" in path:
        return InvalidInput.for_field("path", "contains a NUL character")
    if any(len(segment) > MAX_SEGMENT_CHARS for segment in path.split("/")):
        return InvalidInput.for_field("path", f"a segment is longer than {MAX_SEGMENT_CHARS} characters")
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return None
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return InvalidInput.for_field("query", "not valid UTF-8 once percent-decoded")
    for name, value in pairs:
        field = f"query.{name[:100]}"
        if "\x00" in name or "\x00" in value:
            return InvalidInput.for_field(field, "contains a NUL character")
        if len(value) > MAX_QUERY_VALUE_CHARS:
            return InvalidInput.for_field(field, f"longer than {MAX_QUERY_VALUE_CHARS} characters")
    return None
