"""``HttpTargetProbe``: one poll of the target's public routes (docs/responder-contract.md).

Health, metrics, pool status and the logs written since the previous poll. The probe never raises:
a route that fails is a line in ``Observation.errors``; a target whose health route cannot be reached
at all is ``health_status="unreachable"`` (an outage is the most important thing to observe).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from opslab.responder.model import Check, HealthStatus, LogLine, Observation, PoolStatus

# Keep the lines an SRE reads: every warning and error, and a few of the latest info lines.
_MAX_PROBLEM_LINES = 100
_MAX_INFO_LINES = 10
_LOG_LIMIT = 1000
_HEALTH: dict[str, HealthStatus] = {"healthy": "healthy", "degraded": "degraded", "unhealthy": "unhealthy"}


class HttpTargetProbe:
    def __init__(
        self, base_url: str, *, timeout_s: float = 2.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport)
        self._since: datetime | None = None

    def observe(self) -> Observation:
        started = datetime.now(UTC)
        errors: list[str] = []
        health = self._get("/api/v1/health", errors)
        metrics = self._get("/api/v1/metrics", errors)
        pool = self._get("/api/v1/pool/status", errors)
        params = {"limit": str(_LOG_LIMIT)}
        if self._since is not None:
            params["since"] = self._since.isoformat()
        logs = self._get("/api/v1/logs", errors, params=params)
        self._since = started
        try:
            return _observation(started, health, metrics, pool, logs, errors)
        except (ValidationError, TypeError, ValueError) as exc:
            # A target answering nonsense is observed as such, not as a crash of the responder.
            return Observation(
                timestamp=started, health_status="unhealthy", errors=[*errors, f"bad payload: {exc}"]
            )

    def close(self) -> None:
        self.http.close()

    def _get(
        self, path: str, errors: list[str], params: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        try:
            r = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            errors.append(f"GET {path}: {type(exc).__name__}: {exc}")
            return None
        if r.status_code != 200:
            errors.append(f"GET {path}: HTTP {r.status_code}")
            return None
        try:
            body = r.json()
        except ValueError:
            errors.append(f"GET {path}: not JSON")
            return None
        if not isinstance(body, dict):
            errors.append(f"GET {path}: not a JSON object")
            return None
        return body


def _observation(
    at: datetime,
    health: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
    pool: dict[str, Any] | None,
    logs: dict[str, Any] | None,
    errors: list[str],
) -> Observation:
    if health is None:
        status: HealthStatus = "unreachable"
    else:
        status = _HEALTH.get(str(health.get("status")), "unhealthy")
    m = metrics or {}
    checks = {
        str(name): Check(ok=bool(c.get("ok")), detail=str(c.get("detail", "")))
        for name, c in ((health or {}).get("checks") or {}).items()
        if isinstance(c, dict)
    }
    flags = m.get("flags") or {}
    return Observation(
        timestamp=at,
        health_status=status,
        version=_str(m.get("version")) or _str((health or {}).get("version")),
        checks=checks,
        request_rate=_num(m.get("request_rate")),
        error_rate=_num(m.get("error_rate")),
        avg_response_time_ms=_num(m.get("avg_response_time_ms")),
        latency_p50_ms=_num(m.get("latency_p50_ms")),
        latency_p95_ms=_num(m.get("latency_p95_ms")),
        latency_p99_ms=_num(m.get("latency_p99_ms")),
        status_codes={str(k): int(v) for k, v in (m.get("status_codes") or {}).items()},
        memory_rss_mb=_num(m.get("memory_rss_mb")),
        memory_limit_mb=_num(m["memory_limit_mb"]) if m.get("memory_limit_mb") else None,
        pool=PoolStatus.model_validate(pool) if pool is not None else None,
        flags={str(k): bool(v) for k, v in flags.items()} if isinstance(flags, dict) else {},
        logs=_keep_lines((logs or {}).get("logs") or []),
        errors=errors,
    )


def _keep_lines(raw: list[Any]) -> list[LogLine]:
    lines = [LogLine.model_validate(item) for item in raw if isinstance(item, dict) and "message" in item]
    problems = [line for line in lines if line.level.upper() != "INFO"][-_MAX_PROBLEM_LINES:]
    info = [line for line in lines if line.level.upper() == "INFO"][-_MAX_INFO_LINES:]
    kept = {id(line) for line in [*problems, *info]}
    return [line for line in lines if id(line) in kept]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None
