"""What keeps a sandbox server's door shut: a bearer token on every route but ``/healthz``, a cap on the
body size, a cap on a JSON body's nesting, and the rule that a server taking orders binds beyond
loopback only with its token.

Threat model (docs/responder.md): anyone who can reach a port on this machine can call it, so every
server that changes the world (the chaos server breaks it, the action server repairs it, the target's
``/admin`` routes do either) answers only to the holder of its token, generated into
``<data dir>/sandbox/`` with mode 0600. The read-only routes of the target (health, metrics, logs) stay
open: they are what any monitoring reads.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opslab.errors import InvalidInput, Unauthorized

MAX_BODY_BYTES = 64 * 1024  # a break or an action carries a few parameters, never more
MAX_JSON_DEPTH = 32
OPEN_PATHS = frozenset({"/healthz"})


def fingerprint(token: str) -> str:
    """Who holds ``token``, without saying it: ``token:<8 hex>`` (what an audit records as the caller)."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:8]


def bearer_caller(authorization: str | None, token: str, *, server: str, token_file: str) -> str:
    """The authenticated caller of a request, or ``Unauthorized`` naming the header and the token file."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized(
            f"Authorization: the {server} needs Authorization: Bearer <token> (the token is in {token_file})",
            details={"field": "Authorization"},
        )
    if not secrets.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized(f"Authorization: wrong token for the {server}", details={"field": "Authorization"})
    return fingerprint(token)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: dict[str, str | None]) -> None:
    """Refuse to serve beyond loopback while a server that takes orders has no token (``tokens``: the
    server's name -> its token, None when it has none)."""
    if is_loopback(host):
        return
    missing = sorted(name for name, token in tokens.items() if not token)
    if missing:
        raise InvalidInput.for_field(
            "--host",
            f"{host} is reachable from other machines, and the {', '.join(missing)} would take orders "
            "from anyone there without a token: give it one (--token-file) or bind 127.0.0.1",
        )


def json_depth_ok(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body``'s brackets nest at most ``limit`` deep (strings skipped): checked before parsing,
    since a parser recursing 5,000 levels fails with an internal error rather than a refusal."""
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A body that must be a JSON object (empty: ``{}``); 422 naming ``body`` for anything else."""
    if not body.strip():
        return {}
    if not json_depth_ok(body):
        raise InvalidInput.for_field("body", f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise InvalidInput.for_field("body", "malformed JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput.for_field("body", "must be a JSON object")
    return data


class BodyLimit:
    """Pure ASGI: 413 for a body over ``max_bytes`` (by Content-Length up front, else while reading)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:  # no length given: read up to the cap, then hand the body on whole
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"body: larger than the {self.max_bytes} bytes this server accepts",
                    "details": {"field": "body", "limit_bytes": self.max_bytes},
                }
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
