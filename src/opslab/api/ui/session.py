"""Signing in to the dashboard with the API token (or the read token) for a signed session, signing out,
and error pages."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import SecretStr

from opslab.api.sessions import COOKIE, Role, SessionSigner
from opslab.api.ui.auth import require_csrf
from opslab.api.ui.render import page, security_headers
from opslab.errors import OpslabError, Unauthorized

router = APIRouter(prefix="/ui", include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path of this dashboard: never another host (``//evil``) or scheme."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui"


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    next: str | None = None,  # noqa: A002 - the query name
    expired: bool = False,
) -> HTMLResponse:
    return page(request, "login.html", title="Sign in", next=_safe_next(next), failed=False, expired=expired)


@router.post("/login", response_model=None)
def login(
    request: Request,
    token: Annotated[str, Form(max_length=4096)],
    next: Annotated[str, Form()] = "/ui",  # noqa: A002
) -> Response:
    """A good token buys a signed session cookie (never the token itself) that expires."""
    settings = request.app.state.runtime.settings
    signer: SessionSigner | None = request.app.state.ui_sessions
    tokens: tuple[tuple[Role, SecretStr | None], ...] = (
        ("write", settings.api_token),
        ("read", settings.read_token),
    )
    matched = [
        role
        for role, secret in tokens
        if secret is not None and hmac.compare_digest(token.encode(), secret.get_secret_value().encode())
    ]
    role = matched[0] if matched else None
    if role is None or signer is None:
        return page(
            request, "login.html", status_code=401, title="Sign in", next=_safe_next(next), failed=True
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        signer.issue(role),
        max_age=signer.max_age_s,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str | None, Form()] = None) -> RedirectResponse:
    require_csrf(request, csrf)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


def error_page(request: Request, exc: OpslabError, *, status_code: int | None = None) -> Response:
    """A dashboard page's error as a page: sign-in for a 401, the message and its fields otherwise
    (``status_code``: the HTTP status when it is not the error's own, e.g. a route's 405)."""
    if isinstance(exc, Unauthorized) and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        expired = "&expired=true" if exc.details.get("session") == "expired" else ""
        return RedirectResponse(
            f"/ui/login?next={quote(target)}{expired}", status_code=303, headers=security_headers()
        )
    errors = exc.details.get("errors", []) if isinstance(exc.details.get("errors"), list) else []
    status = status_code or exc.http_status
    # The message of an invalid input is built from its fields ("status: Input should be …"): listed
    # once, by field, it is not repeated above the list.
    said = [f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict)]
    headline = None if said and all(line in exc.message for line in said[:1]) else exc.message
    return page(
        request,
        "error.html",
        status_code=status,
        title=f"{status} {exc.code.replace('_', ' ')}",
        error=exc,
        headline=headline,
        fields=errors,
    )
