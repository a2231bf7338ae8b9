"""How the agent reaches the service: flags, health, and the URL load goes to (a Protocol + httpx)."""

from __future__ import annotations

from typing import Any, Protocol

import httpx
from pydantic import JsonValue

from opslab.canary.model import Flags
from opslab.canary.plan import Target
from opslab.errors import Unavailable

Json = dict[str, JsonValue]


class TargetClient(Protocol):
    """The service under test. Every method raises ``opslab.errors.Unavailable`` when it cannot reach it."""

    def health(self) -> Json: ...
    def get_flags(self) -> Flags: ...
    def set_flags(self, flags: Flags) -> Flags: ...
    def request_url(self) -> str: ...
    def start_experiment(self, body: Json) -> Json: ...
    def fetch_report(self) -> str | None: ...


class HttpTarget:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.http = httpx.Client(base_url=target.base_url.rstrip("/"), timeout=target.timeout_s)
        self.calls: list[str] = []

    def _call(self, method: str, path: str, **kw: Any) -> Json:
        self.calls.append(f"{method} {path}")
        try:
            r = self.http.request(method, path, **kw)
            r.raise_for_status()
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"target {self.target.base_url}{path}: {exc}") from exc
        if not isinstance(body, dict):
            raise Unavailable(
                f"target {self.target.base_url}{path}: expected a JSON object, got {body!r:.80}"
            )
        return body

    def health(self) -> Json:
        return self._call("GET", self.target.health_path)

    def get_flags(self) -> Flags:
        return self._call("GET", self.target.flags_path)

    def set_flags(self, flags: Flags) -> Flags:
        return self._call("POST", self.target.flags_path, json=flags)

    def request_url(self) -> str:
        return self.target.base_url.rstrip("/") + self.target.request_path

    def start_experiment(self, body: Json) -> Json:
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


def unhealthy(health: Json) -> list[str]:
    """Names of unhealthy dependencies in a ``{"ok", "health": {name: {"ok"}}}`` answer."""
    deps = health.get("health")
    bad = []
    if isinstance(deps, dict):
        bad = [name for name, h in deps.items() if not (h.get("ok") if isinstance(h, dict) else h)]
    if not bad and health.get("ok") is False:
        bad = ["service"]
    return bad
