"""Where the service may send traffic of its own: the one rule for every route that makes the server call
out (a canary's load, later the responder's target and action server, autoops webhooks).

The service must not be a load cannon for whoever can reach its API: a URL whose host is not in the
configured allow-list is refused before anything runs, dry runs included, token or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

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
