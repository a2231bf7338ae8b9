"""What ``/proc`` says about this host and a process: CPU busy share, load, available memory, and a
process's state (running, sleeping, stopped by a signal, zombie, gone) and CPU share.

The target reports them in its metrics and the action server in its liveness check, so a responder can
tell "slow because the host is busy" (every core busy, the process running) from "the process is hung"
(stopped, or answering nothing while the host is idle) and from "the process is gone". A share is over
the time since the previous reading of the same ``CpuMeter`` (the first reading: since boot / start).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from pydantic import BaseModel

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
STATES = {"R": "running", "S": "sleeping", "D": "disk_wait", "T": "stopped", "t": "stopped", "Z": "zombie"}


class HostStats(BaseModel):
    cpus: int
    load1: float
    cpu_busy_pct: float | None = None
    mem_available_mb: float | None = None
    mem_total_mb: float | None = None


class ProcessStats(BaseModel):
    pid: int
    alive: bool
    state: str = "gone"
    cpu_pct: float | None = None


def _host_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of every CPU together, from /proc/stat."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def _meminfo() -> dict[str, float]:
    found: dict[str, float] = {}
    try:
        for line in (PROC / "meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemAvailable", "MemTotal"):
                found[key] = int(rest.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return found


def process_ticks(pid: int) -> tuple[str, int] | None:
    """(state letter, utime + stime jiffies) of ``pid``; None when it does not exist."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None


class CpuMeter:
    """Host and per-process CPU shares between two readings (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._host: tuple[int, int] | None = None
        self._procs: dict[int, tuple[float, int]] = {}

    def host(self) -> HostStats:
        now = _host_ticks()
        busy_pct = None
        with self._lock:
            before, self._host = self._host, now
        if now is not None and before is not None and now[1] > before[1]:
            busy_pct = round(100.0 * (now[0] - before[0]) / (now[1] - before[1]), 1)
        elif now is not None and now[1] > 0:
            busy_pct = round(100.0 * now[0] / now[1], 1)
        mem = _meminfo()
        try:
            load1 = os.getloadavg()[0]
        except OSError:
            load1 = 0.0
        return HostStats(
            cpus=os.cpu_count() or 1,
            load1=round(load1, 2),
            cpu_busy_pct=busy_pct,
            mem_available_mb=round(mem["MemAvailable"], 1) if "MemAvailable" in mem else None,
            mem_total_mb=round(mem["MemTotal"], 1) if "MemTotal" in mem else None,
        )

    def process(self, pid: int, *, exited: bool = False) -> ProcessStats:
        found = None if exited else process_ticks(pid)
        if found is None:
            return ProcessStats(pid=pid, alive=False, state="gone")
        letter, ticks = found
        now = time.monotonic()
        with self._lock:
            before = self._procs.get(pid)
            self._procs[pid] = (now, ticks)
        cpu = None
        if before is not None and now > before[0]:
            cpu = round(100.0 * (ticks - before[1]) / TICKS / (now - before[0]), 1)
        state = STATES.get(letter, letter)
        return ProcessStats(pid=pid, alive=state != "zombie", state=state, cpu_pct=cpu)
