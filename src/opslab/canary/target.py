"""How the agent reaches the service: flags, health, and the URL load goes to (a Protocol + httpx)."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from opslab.canary.plan import Target
from opslab.errors import Unavailable


class TargetClient(Protocol):
    def health(self) -> dict[str, Any]: ...
    def get_flags(self) -> dict[str, Any]: ...
    def set_flags(self, flags: dict[str, Any]) -> dict[str, Any]: ...
    def request_url(self) -> str: ...
    def start_experiment(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def fetch_report(self) -> str | None: ...


class HttpTarget:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.http = httpx.Client(base_url=target.base_url.rstrip("/"), timeout=target.timeout_s)
        self.calls: list[str] = []

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        self.calls.append(f"{method} {path}")
        try:
            r = self.http.request(method, path, **kw)
            r.raise_for_status()
            body: dict[str, Any] = r.json()
            return body
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"target {self.target.base_url}{path}: {exc}") from exc

    def health(self) -> dict[str, Any]:
        return self._call("GET", self.target.health_path)

    def get_flags(self) -> dict[str, Any]:
        return self._call("GET", self.target.flags_path)

    def set_flags(self, flags: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", self.target.flags_path, json=flags)

    def request_url(self) -> str:
        return self.target.base_url.rstrip("/") + self.target.request_path

    def start_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", self.target.experiment_path or "", json=body)

    def fetch_report(self) -> str | None:
        """The target's mini report, or None while its experiment is still running (202, 404, 409)."""
        path = self.target.report_path
        self.calls.append(f"GET {path}")
        try:
            r = self.http.get(path)
        except httpx.HTTPError as exc:
            raise Unavailable(f"target {self.target.base_url}{path}: {exc}") from exc
        if r.status_code in (202, 404, 409):
            return None
        if r.status_code >= 400:
            raise Unavailable(f"target {self.target.base_url}{path}: HTTP {r.status_code}: {r.text[:200]}")
        return r.text

    def close(self) -> None:
        self.http.close()


def unhealthy(health: dict[str, Any]) -> list[str]:
    """Names of unhealthy dependencies in a ``{"ok", "health": {name: {"ok"}}}`` answer."""
    deps = health.get("health") or {}
    bad = [name for name, h in deps.items() if not (h.get("ok") if isinstance(h, dict) else h)]
    if not bad and health.get("ok") is False:
        bad = ["service"]
    return bad
