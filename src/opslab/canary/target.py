"""How the agent reaches the service: flags (read with GET, written with the plan's method), health, the
load it sends, the target's own experiment and report — a Protocol, and its httpx implementation that
sends the plan's headers (resolved secrets) with every request."""

from __future__ import annotations

from typing import Any, Protocol

import httpx
from pydantic import JsonValue

from opslab.canary.loadgen import LoadSpec
from opslab.canary.model import Flags
from opslab.canary.secrets import RunSecrets
from opslab.canary.target_plan import Target
from opslab.errors import Unavailable

Json = dict[str, JsonValue]


class TargetClient(Protocol):
    """The service under test. Every method raises ``opslab.errors.Unavailable`` when it cannot reach it."""

    def health(self) -> Json: ...
    def get_flags(self) -> Flags: ...
    def set_flags(self, flags: Flags) -> Flags: ...
    def load(self) -> LoadSpec: ...
    def start_experiment(self, body: Json) -> Json: ...
    def fetch_report(self) -> str | None: ...


class HttpTarget:
    def __init__(self, target: Target, secrets: RunSecrets | None = None, *, seed: int = 0) -> None:
        self.target = target
        self.secrets = secrets or RunSecrets()
        self.seed = seed
        self.http = httpx.Client(
            base_url=target.base_url, timeout=target.timeout_s, headers=self.secrets.headers
        )
        self.calls: list[str] = []

    def _call(self, method: str, path: str, **kw: Any) -> Json:
        self.calls.append(f"{method} {path}")
        where = f"target {self.target.base_url}{path}"
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise Unavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
        if r.status_code >= 400:
            hint = " (check target.headers)" if r.status_code in (401, 403) else ""
            raise Unavailable(f"{where}: HTTP {r.status_code}{hint}: {r.text[:200]}")
        try:
            body = r.json()
        except ValueError:
            raise Unavailable(f"{where}: not JSON: {r.text[:80]!r}") from None
        if not isinstance(body, dict):
            raise Unavailable(f"{where}: expected a JSON object, got {body!r:.80}")
        return body

    def health(self) -> Json:
        return self._call("GET", self.target.health_path)

    def get_flags(self) -> Flags:
        return self._call("GET", self.target.flags_path)

    def set_flags(self, flags: Flags) -> Flags:
        return self._call(self.target.flags_method, self.target.flags_path, json=flags)

    def load(self) -> LoadSpec:
        return LoadSpec.of(
            self.target.base_url,
            [(r.method, r.path, r.body, r.weight) for r in self.target.mix()],
            headers=self.secrets.headers,
            error_statuses=self.target.error_statuses,
            seed=self.seed,
        )

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


def restored(previous: Flags, now: Flags) -> tuple[bool, list[str]]:
    """Whether ``now`` (read back after a restore) holds ``previous``: equal, or with keys the candidate
    added and a merging flags route kept (named, as a warning)."""
    if now == previous:
        return True, []
    extra: list[str] = []

    def holds(want: JsonValue, got: JsonValue, path: str) -> bool:
        if isinstance(want, dict) and isinstance(got, dict):
            extra.extend(f"{path}{k}" for k in got if k not in want)
            return all(k in got and holds(v, got[k], f"{path}{k}.") for k, v in want.items())
        return want == got

    if holds(previous, now, ""):
        return True, [f"restored, but the target kept keys the candidate added: {', '.join(extra[:5])}"]
    return False, []
