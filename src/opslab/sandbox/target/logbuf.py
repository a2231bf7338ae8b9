"""What the target remembers of its own recent past: a ring buffer of log lines (``GET /api/v1/logs``) and
a sliding window of order requests (``GET /api/v1/metrics``), both safe to write from the event loop and
from worker threads at once."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel

Level = Literal["INFO", "WARNING", "ERROR"]
Cause = Literal["pool_timeout", "db_error", "dependency", "release", "memory", "disk"]
log = logging.getLogger("opslab.sandbox.target")
_LEVELS: dict[Level, int] = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}


class LogLine(BaseModel):
    ts: datetime
    level: Level
    message: str


class LogBuffer:
    """The last ``capacity`` log lines, oldest first; each also goes to the process log."""

    def __init__(self, capacity: int = 5000) -> None:
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def write(self, level: Level, message: str) -> None:
        line = LogLine(ts=datetime.now(UTC), level=level, message=message)
        with self._lock:
            self._lines.append(line)
        log.log(_LEVELS[level], message)

    def read(self, *, since: datetime | None = None, limit: int = 200) -> list[LogLine]:
        """The newest ``limit`` lines written after ``since``, oldest first."""
        with self._lock:
            lines = list(self._lines)
        if since is not None:
            lines = [line for line in lines if line.ts > since]
        return lines[-limit:]


@dataclass(frozen=True)
class Sample:
    at: float
    status: int
    latency_ms: float
    cause: Cause | None


class WindowStats(BaseModel):
    window_s: float
    requests: int
    request_rate: float
    error_rate: float
    avg_response_time_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    status_codes: dict[str, int]
    wait_timeouts: int


class RequestWindow:
    """Order requests of the last ``window_s`` seconds (monotonic clock), and what they add up to."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[Sample] = deque()
        self._lock = threading.Lock()
        self._born = time.monotonic()

    def record(self, status: int, latency_ms: float, cause: Cause | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            self._samples.append(Sample(now, status, latency_ms, cause))
            self._prune(now)

    def _prune(self, now: float) -> None:
        while self._samples and self._samples[0].at < now - self.window_s:
            self._samples.popleft()

    def stats(self) -> WindowStats:
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            samples = list(self._samples)
        # A young process has not lived a whole window yet: its rate is over the time it has lived.
        span = max(min(self.window_s, now - self._born), 1e-3)
        codes: dict[str, int] = {}
        for s in samples:
            codes[str(s.status)] = codes.get(str(s.status), 0) + 1
        errors = sum(1 for s in samples if s.status >= 500)
        latencies = np.array([s.latency_ms for s in samples], dtype=float)
        p50, p95, p99 = (
            (float(v) for v in np.percentile(latencies, [50, 95, 99])) if samples else (0.0, 0.0, 0.0)
        )
        return WindowStats(
            window_s=self.window_s,
            requests=len(samples),
            request_rate=round(len(samples) / span, 2),
            error_rate=round(100.0 * errors / len(samples), 2) if samples else 0.0,
            avg_response_time_ms=round(float(latencies.mean()), 2) if samples else 0.0,
            latency_p50_ms=round(p50, 2),
            latency_p95_ms=round(p95, 2),
            latency_p99_ms=round(p99, 2),
            status_codes=codes,
            wait_timeouts=sum(1 for s in samples if s.cause == "pool_timeout"),
        )
