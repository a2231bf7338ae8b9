"""Who may do what, decided before a request's body is read: pure ASGI middleware in front of every route.

With ``OPSLAB_API_TOKEN`` set, every route needs the bearer token, except ingestion (guarded by the ingest
secret), the service's identity and health, the sign-in page and its static files, and — only with
``OPSLAB_PUBLIC_READS=true`` — reads. ``OPSLAB_READ_TOKEN`` is a second token good for reads only. The
dashboard's signed session (``api/sessions.py``) stands for a token on reads and on the dashboard's own
forms, which carry a CSRF token; never on the API's writes, which carry none.

Deciding here rather than in a route dependency makes a request nobody admitted a 401 before its body is
read or parsed: no 422 telling an anonymous client what is wrong with its JSON, no body read from it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from opslab.api.deps import is_ui
from opslab.api.errors import render_error
from opslab.api.sessions import COOKIE, Role, SessionSigner, UiSession
from opslab.config import Settings
from opslab.errors import Unauthorized

# Ingestion is guarded by the ingest secret, not by the API token: agents in the field hold the former.
INGEST_PATHS = frozenset(
    {
        "/agent-runs",
        "/agent-runs/batch",
        "/v1/traces",
        "/v1/logs",
        "/v1/metrics",
        "/api/public/otel/v1/traces",
    }
)
# Deliberately open whatever is configured: who the service is, and whether it is up.
OPEN_PATHS = frozenset({"/", "/healthz"})
# What the dashboard serves to anyone: the sign-in page and its static files.
OPEN_PREFIXES = ("/ui/login", "/ui/static/")
READS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Grant:
    """What a request may do: ``role`` None for an open route or an open read."""

    role: Role | None = None
    session: UiSession | None = None


OPEN = Grant()


def decide(
    settings: Settings,
    signer: SessionSigner | None,
    *,
    method: str,
    path: str,
    headers: Headers,
    cookies: dict[str, str],
) -> Grant:
    """The grant of a request, or ``Unauthorized`` naming the header it lacks."""
    if method == "POST" and path in INGEST_PATHS:
        # The secret as X-Ingest-Secret, or as the password of HTTP Basic auth: the Langfuse SDK sends its
        # secret key that way (LANGFUSE_SECRET_KEY set to the ingest secret).
        secret = settings.ingest_secret
        if secret is not None and not (
            _same(headers.get("x-ingest-secret"), secret.get_secret_value())
            or _same(_basic_password(headers), secret.get_secret_value())
        ):
            raise Unauthorized("X-Ingest-Secret: missing or wrong", details={"header": "X-Ingest-Secret"})
        return OPEN
    token = settings.api_token
    if token is None or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return OPEN
    reading, ui = method in READS, is_ui(path)
    if reading and settings.public_reads and not ui:
        return OPEN  # a dashboard page looks for a session first (below): a signed-in page's forms act
    scheme, _, value = headers.get("authorization", "").partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else None
    if bearer is not None:
        if _same(bearer, token.get_secret_value()):
            return Grant(role="write")
        reader = settings.read_token
        if reading and reader is not None and _same(bearer, reader.get_secret_value()):
            return Grant(role="read")
    expired = False
    if bearer is None and (reading or ui) and signer is not None:
        check = signer.read(cookies.get(COOKIE))
        session, expired = check.session, check.expired
        if session is not None and (session.role == "write" or reading):
            return Grant(role=session.role, session=session)
        if session is not None:
            raise Unauthorized(
                "this session signed in with the read-only token; sign in with the API token to act",
                details={"header": "Authorization"},
            )
    if reading and settings.public_reads:  # a dashboard page, open to read without a sign-in
        return OPEN
    details = {"header": "Authorization", **({"session": "expired"} if expired else {})}
    raise Unauthorized("Authorization: a valid Bearer token is required", details=details)


def _basic_password(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class AccessGuard:
    """Refuse what ``decide`` refuses (the API's JSON error, or the dashboard's sign-in redirect) and put
    the grant in the request's state for the dashboard (``ui_role``, ``ui_session``, ``ui_csrf``)."""

    def __init__(self, app: ASGIApp, *, settings: Settings, signer: SessionSigner | None) -> None:
        self.app, self.settings, self.signer = app, settings, signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            grant = decide(
                self.settings,
                self.signer,
                method=request.method,
                path=request.url.path,
                headers=request.headers,
                cookies=request.cookies,
            )
        except Unauthorized as exc:
            await render_error(request, exc)(scope, receive, send)
            return
        session = grant.session
        scope.setdefault("state", {}).update(
            ui_role=grant.role,
            ui_session=session,
            ui_csrf=self.signer.csrf(session) if session is not None and self.signer is not None else "",
        )
        await self.app(scope, receive, send)
