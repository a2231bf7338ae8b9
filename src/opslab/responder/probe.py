"""``HttpTargetProbe``: one poll of the target's public routes (docs/responder-contract.md).

Health, metrics, pool status and the logs written since the previous poll. The probe never raises:
a route that fails is a line in ``Observation.errors``; a target whose health route does not answer is
``health_status="unreachable"`` with how: ``refused`` (nothing listens: the process is gone), ``timeout``
(it accepts and says nothing: hung, or a host too busy to answer in time) or ``error``. That is evidence,
not a verdict: the workflow asks the action server whether the process lives before concluding. A poll
whose health call failed skips the other routes (they would fail the same way) and leaves every reading
missing (``None``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from opslab.responder.observation import Check, HealthStatus, LogLine, Observation, PoolStatus, Reachability

# Keep the lines an SRE reads: every warning and error, and a few of the latest info lines.
_MAX_PROBLEM_LINES = 100
_MAX_INFO_LINES = 10
_LOG_LIMIT = 1000
_HEALTH: dict[str, HealthStatus] = {"healthy": "healthy", "degraded": "degraded", "unhealthy": "unhealthy"}


class HttpTargetProbe:
    def __init__(
        self, base_url: str, *, timeout_s: float = 5.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self._since: datetime | None = None

    def __repr__(self) -> str:
        return f"HttpTargetProbe({self.base_url})"

    def observe(self) -> Observation:
        started = datetime.now(UTC)
        errors: list[str] = []
        t0 = time.perf_counter()
        reach: list[Reachability] = []
        health = self._get("/api/v1/health", errors, reach=reach)
        probe_ms = round((time.perf_counter() - t0) * 1000, 1)
        if health is None:
            return Observation(
                timestamp=started,
                health_status="unreachable",
                reachability=reach[0] if reach else "error",
                probe_ms=probe_ms,
                errors=errors,
            )
        metrics = self._get("/api/v1/metrics", errors)
        pool = self._get("/api/v1/pool/status", errors)
        params = {"limit": str(_LOG_LIMIT)}
        if self._since is not None:
            params["since"] = self._since.isoformat()
        logs = self._get("/api/v1/logs", errors, params=params)
        self._since = started
        try:
            return _observation(started, health, metrics, pool, logs, errors).model_copy(
                update={"probe_ms": probe_ms}
            )
        except (ValidationError, TypeError, ValueError) as exc:
            # A target answering nonsense is observed as such, not as a crash of the responder.
            return Observation(
                timestamp=started, health_status="unhealthy", errors=[*errors, f"bad payload: {exc}"]
            )

    def close(self) -> None:
        self.http.close()

    def _get(
        self,
        path: str,
        errors: list[str],
        params: dict[str, str] | None = None,
        reach: list[Reachability] | None = None,
    ) -> dict[str, Any] | None:
        try:
            r = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            errors.append(f"GET {path}: {type(exc).__name__}: {exc}")
            if reach is not None:
                reach.append(
                    "timeout"
                    if isinstance(exc, httpx.TimeoutException)
                    else "refused"
                    if isinstance(exc, httpx.ConnectError)
                    else "error"
                )
            return None
        if r.status_code != 200:
            errors.append(f"GET {path}: HTTP {r.status_code}")
            if reach is not None:
                reach.append("error")
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
    health: dict[str, Any],
    metrics: dict[str, Any] | None,
    pool: dict[str, Any] | None,
    logs: dict[str, Any] | None,
    errors: list[str],
) -> Observation:
    status: HealthStatus = _HEALTH.get(str(health.get("status")), "unhealthy")
    m = metrics or {}
    raw_checks = health.get("checks") or {}
    checks = {
        str(name): Check(ok=bool(c.get("ok")), detail=str(c.get("detail", "")))
        for name, c in raw_checks.items()
        if isinstance(c, dict)
    }
    dep = raw_checks.get("dependency") if isinstance(raw_checks, dict) else None
    flags = m.get("flags") or {}
    raw_host = m.get("host")
    host: dict[str, Any] = raw_host if isinstance(raw_host, dict) else {}
    return Observation(
        timestamp=at,
        health_status=status,
        pid=_int(health.get("pid")),
        uptime_s=_num(health.get("uptime_s")),
        version=_str(m.get("version")) or _str(health.get("version")),
        checks=checks,
        dependency_latency_ms=_num(dep.get("latency_ms")) if isinstance(dep, dict) else None,
        request_rate=_num(m.get("request_rate")),
        error_rate=_num(m.get("error_rate")),
        avg_response_time_ms=_num(m.get("avg_response_time_ms")),
        latency_p50_ms=_num(m.get("latency_p50_ms")),
        latency_p95_ms=_num(m.get("latency_p95_ms")),
        latency_p99_ms=_num(m.get("latency_p99_ms")),
        status_codes={str(k): int(v) for k, v in (m.get("status_codes") or {}).items()},
        metrics_window_s=_num(m.get("window_s")),
        memory_rss_mb=_num(m.get("memory_rss_mb")),
        memory_limit_mb=_num(m.get("memory_limit_mb")) or None,
        process_cpu_pct=_num(m.get("process_cpu_pct")),
        host_cpus=_int(host.get("cpus")),
        host_load1=_num(host.get("load1")),
        host_cpu_busy_pct=_num(host.get("cpu_busy_pct")),
        host_mem_available_mb=_num(host.get("mem_available_mb")),
        host_mem_total_mb=_num(host.get("mem_total_mb")),
        pool=PoolStatus.model_validate(pool) if pool is not None else None,
        flags={str(k): bool(v) for k, v in flags.items()} if isinstance(flags, dict) else {},
        experiments=_announced(health.get("experiment")),
        logs=_keep_lines((logs or {}).get("logs") or []),
        errors=errors,
    )


def _announced(value: Any) -> list[str]:
    """The experiment a target announces in its health (``"experiment": {"name", "started_at"}`` or a
    string), as one line; untrusted text, so bounded."""
    if isinstance(value, str) and value.strip():
        return [value.strip()[:200]]
    if isinstance(value, dict) and value:
        name = str(value.get("name") or value.get("kind") or "an experiment")[:160]
        since = value.get("started_at")
        return [f"{name} (since {str(since)[:40]})" if since else name]
    return []


def _keep_lines(raw: list[Any]) -> list[LogLine]:
    lines = [LogLine.model_validate(item) for item in raw if isinstance(item, dict) and "message" in item]
    problems = [line for line in lines if line.level.upper() != "INFO"][-_MAX_PROBLEM_LINES:]
    info = [line for line in lines if line.level.upper() == "INFO"][-_MAX_INFO_LINES:]
    kept = {id(line) for line in [*problems, *info]}
    return [line for line in lines if id(line) in kept]


def _num(value: Any) -> float | None:
    """A reading, or None when the target did not give one (missing is not zero)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None
