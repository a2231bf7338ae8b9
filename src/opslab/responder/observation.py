"""What the responder sees of the target in one poll: health, checks, metrics, pool, logs, the host, and,
when the target did not answer, what the action server says of its process. A reading the poll did not
get is ``None`` (missing), never 0."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

HealthStatus = Literal["healthy", "degraded", "unhealthy", "unreachable"]
Reachability = Literal["ok", "refused", "timeout", "error"]
PoolHealth = Literal["healthy", "degraded", "critical"]


class Check(BaseModel):
    ok: bool
    detail: str = ""


class PoolStatus(BaseModel):
    size: int = 0
    max_overflow: int = 0
    checked_out: int = 0
    overflow: int = 0
    utilization: float = 0.0
    pool_health: PoolHealth = "healthy"
    wait_timeouts: int = 0


class LogLine(BaseModel):
    ts: datetime | None = None
    level: str = "INFO"
    message: str


class Liveness(BaseModel):
    """What the action server says of the target's process and its host (``GET /action/liveness``)."""

    supervised: bool = False
    alive: bool | None = None
    state: str | None = Field(None, description="running, sleeping, stopped (SIGSTOP), zombie, gone")
    pid: int | None = None
    cpu_pct: float | None = None
    host_cpus: int | None = None
    host_load1: float | None = None
    host_cpu_busy_pct: float | None = None
    host_mem_available_mb: float | None = None


class Observation(BaseModel):
    """One poll of the target: health, metrics, pool and recent logs; ``errors`` are probe failures.

    A reading the poll did not get is ``None`` (missing), never 0: a target that did not answer has no
    error rate, no latency and no memory, and a trend skips the polls it is missing from."""

    timestamp: datetime
    health_status: HealthStatus = "healthy"
    reachability: Reachability = "ok"
    probe_ms: float | None = Field(None, description="How long the health call took.")
    pid: int | None = None
    uptime_s: float | None = None
    version: str | None = None
    checks: dict[str, Check] = Field(default_factory=dict)
    dependency_latency_ms: float | None = None
    request_rate: float | None = None
    error_rate: float | None = Field(None, description="Percent of requests that failed, 0-100.")
    avg_response_time_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    status_codes: dict[str, int] = Field(default_factory=dict)
    metrics_window_s: float | None = Field(None, description="The span the target's metrics cover.")
    memory_rss_mb: float | None = None
    memory_limit_mb: float | None = None
    process_cpu_pct: float | None = None
    host_cpus: int | None = None
    host_load1: float | None = None
    host_cpu_busy_pct: float | None = None
    host_mem_available_mb: float | None = None
    host_mem_total_mb: float | None = None
    liveness: Liveness | None = None
    pool: PoolStatus | None = None
    flags: dict[str, bool] = Field(default_factory=dict)
    experiments: list[str] = Field(
        default_factory=list,
        description="Experiments in progress on the target: one it announces in its health, a canary "
        "holding it (registered in the same database).",
    )
    logs: list[LogLine] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)

    @property
    def answered(self) -> bool:
        return self.reachability == "ok"

    def host_busy(self, busy_pct: float = 85.0) -> bool:
        """Every core busy: the host's CPU share (from the target, else the action server) or its load."""
        live = self.liveness
        busy = (
            self.host_cpu_busy_pct if self.host_cpu_busy_pct is not None else live and live.host_cpu_busy_pct
        )
        cpus = self.host_cpus or (live.host_cpus if live else None)
        load = self.host_load1 if self.host_load1 is not None else live and live.host_load1
        return bool(
            (isinstance(busy, float | int) and busy >= busy_pct)
            or (cpus and isinstance(load, float | int) and load >= 1.5 * cpus)
        )
