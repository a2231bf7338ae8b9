"""The dashboard's sign-in session: a signed cookie saying what signed in (the API token's rights or the
read token's) and until when, never the token itself.

The key is ``OPSLAB_UI_SESSION_SECRET`` or, by default, derived from the API and read tokens: replicas
that share their tokens share their sessions, and changing a token signs every browser out. A session
is stateless: signing out deletes the browser's cookie; a copy of it stays good until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadData, URLSafeSerializer
from pydantic import SecretStr

from opslab.config import Settings

COOKIE = "opslab_ui"
Role = Literal["write", "read"]


@dataclass(frozen=True)
class UiSession:
    role: Role
    session_id: str
    expires_at: int


@dataclass(frozen=True)
class SessionCheck:
    """What a request's cookie says: a live session, or none (``expired``: there was one, now too old)."""

    session: UiSession | None = None
    expired: bool = False


class SessionSigner:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        token = settings.api_token
        if token is None:
            raise ValueError("sessions need OPSLAB_API_TOKEN: without it the dashboard has no sign-in")
        self.max_age_s = settings.ui_session_max_age_s
        self._has_reader = settings.read_token is not None
        self._clock = clock
        self._key = _key(settings, token)
        self._serializer = URLSafeSerializer(
            self._key, salt="opslab-ui-session", signer_kwargs={"digest_method": hashlib.sha256}
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> SessionSigner | None:
        """A signer when the service has a token to sign in with; None when the dashboard is open."""
        return cls(settings) if settings.api_token is not None else None

    def issue(self, role: Role) -> str:
        expires_at = int(self._clock()) + self.max_age_s
        return self._serializer.dumps({"role": role, "sid": secrets.token_urlsafe(16), "exp": expires_at})

    def read(self, cookie: str | None) -> SessionCheck:
        if not cookie:
            return SessionCheck()
        try:
            data = self._serializer.loads(cookie)
        except BadData:
            return SessionCheck()
        if not isinstance(data, dict):
            return SessionCheck()
        role, sid, expires_at = data.get("role"), data.get("sid"), data.get("exp")
        if role not in ("write", "read") or not isinstance(sid, str) or not isinstance(expires_at, int):
            return SessionCheck()
        if role == "read" and not self._has_reader:
            return SessionCheck()  # the read token was withdrawn (the key may be configured, not derived)
        if expires_at <= self._clock():
            return SessionCheck(expired=True)
        granted: Role = "write" if role == "write" else "read"
        return SessionCheck(UiSession(role=granted, session_id=sid, expires_at=expires_at))

    def csrf(self, session: UiSession) -> str:
        """The token the session's forms post back: unforgeable without the key, nothing to store."""
        return hmac.new(self._key, b"csrf\x00" + session.session_id.encode(), hashlib.sha256).hexdigest()[:32]


def _key(settings: Settings, token: SecretStr) -> bytes:
    if settings.ui_session_secret is not None:
        return settings.ui_session_secret.get_secret_value().encode()
    reader = settings.read_token.get_secret_value() if settings.read_token is not None else ""
    return hmac.new(
        token.get_secret_value().encode(),
        b"opslab-ui-session\x00" + reader.encode(),
        hashlib.sha256,
    ).digest()
