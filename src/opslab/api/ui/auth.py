"""The dashboard's auth is the API's: with ``OPSLAB_API_TOKEN`` set, a browser signs in once with the token
(``/ui/login``) and gets a signed, expiring session cookie (HttpOnly, SameSite=Strict; ``api/sessions.py``)
that the API's guard accepts in place of the ``Authorization`` header. ``OPSLAB_READ_TOKEN`` signs in
for reading only.

A cookie rides along with any request the browser makes, so a session is good for reads anywhere and for
the dashboard's own forms only, and every such form carries a CSRF token derived from the session (an
HMAC under the session key: unforgeable without it, nothing to store). A request that sends the bearer
header needs no CSRF token: another site cannot make a browser send one.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from opslab.api.deps import is_ui
from opslab.api.sessions import COOKIE
from opslab.errors import PolicyViolation, Unauthorized

__all__ = ["COOKIE", "csrf_token", "is_ui", "require_csrf", "require_writer", "signed_in"]


def csrf_token(request: Request) -> str:
    """The token forms post back; empty without a session (a bearer header needs none)."""
    token: str = getattr(request.state, "ui_csrf", "")
    return token


def signed_in(request: Request) -> bool:
    return getattr(request.state, "ui_session", None) is not None


def require_csrf(request: Request, given: str | None) -> None:
    """Refuse a session-authenticated form post without the right CSRF token."""
    if not signed_in(request):
        return
    expected = csrf_token(request)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise PolicyViolation("csrf: the form is stale or from another site; reload the page", details={})


def require_writer(request: Request) -> None:
    """Changing anything needs the API token; a read-token session may only look."""
    if getattr(request.state, "ui_role", None) == "read":
        raise Unauthorized(
            "this session signed in with the read-only token; sign in with the API token to act",
            details={"header": "Authorization"},
        )
