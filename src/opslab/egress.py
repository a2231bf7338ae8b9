"""Where the service may send traffic of its own: the one rule for every route that makes the server call
out (a canary's load, later the responder's target and action server, autoops webhooks), and the one way
a webhook is posted.

The service must not be a load cannon for whoever can reach its API: a URL whose host is not in the
configured allow-list is refused before anything runs, dry runs included, token or not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from opslab.errors import InvalidInput, PolicyViolation


def check_target(url: str, allowed: Sequence[str], *, field: str, setting: str) -> None:
    """Refuse ``url`` unless its host (or ``host:port``) is in ``allowed``; ``field`` names it in errors."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidInput.for_field(field, f"{url!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidInput.for_field(field, f"{url!r}: expected an http(s) URL with a host")
    names = {a.strip().lower().strip("[]") for a in allowed}
    candidates = {host.lower(), f"{host.lower()}:{port}" if port else host.lower()}
    if names & candidates:
        return
    raise PolicyViolation(
        f"{field}: {host} is not an allowed target of this service; allowed: {', '.join(sorted(names))} "
        f"(set {setting} to add hosts)",
        details={"field": field, "host": host, "allowed": sorted(names), "setting": setting},
    )


def check_volume(requests: float, limit: int, *, field: str, setting: str) -> None:
    """Refuse work that would send more than ``limit`` requests."""
    if requests > limit:
        raise PolicyViolation(
            f"{field}: this would send about {requests:,.0f} requests, over the limit of {limit:,} "
            f"(set {setting} to raise it)",
            details={"field": field, "requests": int(requests), "limit": limit, "setting": setting},
        )


def post_webhook(
    url: str, body: Mapping[str, Any], *, timeout_s: float = 5.0, client: httpx.Client | None = None
) -> str | None:
    """POST a webhook's JSON body (Slack-compatible when it has ``text``). A webhook that is down never
    stops the work that notifies: the failure comes back as a reason (never naming the URL, which may be
    a credential itself, as a Slack webhook's is), None when delivered."""
    try:
        if client is not None:
            r = client.post(url, json=dict(body), timeout=timeout_s)
        else:
            r = httpx.post(url, json=dict(body), timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    return f"HTTP {r.status_code}" if r.status_code >= 300 else None
