"""The process holding a target, and whether it is provably dead.

A hold lapses one lease period after its last renewal; until then, a canary killed with -9 left its
candidate flags on the target with nobody allowed to put them back. So a hold also records the process
that took it (``HolderProcess``): host name, kernel boot id, pid namespace, pid, and the process's start
time (clock ticks after boot, ``/proc/<pid>/stat``). The holder is *provably dead* when, seen from the same
host, boot and pid namespace, its pid no longer exists, is a zombie, or is another process (another start
time: the pid was reused). Anything else proves nothing and the hold is left to lapse: another host or
container (its pids are not ours to look up), another boot id (a reboot looks the same as another machine
of the same name), no ``/proc`` (not Linux), or a process we may not inspect.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

PROC = Path("/proc")
_START_FIELD = 19  # starttime (field 22 of /proc/<pid>/stat), counted from the state (field 3)


class HolderProcess(BaseModel):
    """Where a hold's process runs and which process it is (kept in the hold's intent)."""

    model_config = ConfigDict(frozen=True)
    host: str
    pid: int = Field(ge=1)
    boot_id: str | None = None
    pid_ns: str | None = None
    start_ticks: int | None = Field(None, description="Start time in clock ticks after boot (Linux).")

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def process_of(pid: int) -> HolderProcess:
    """Process ``pid`` of this host (seen from this process's pid namespace)."""
    return HolderProcess(
        host=socket.gethostname(), pid=pid, boot_id=_boot_id(), pid_ns=_pid_ns(), start_ticks=_start(pid)
    )


def this_process() -> HolderProcess:
    return process_of(os.getpid())


def is_dead(holder: HolderProcess) -> bool:
    """True only when ``holder`` provably no longer runs (see the module docstring)."""
    here = process_of(os.getpid())
    same_machine = holder.host == here.host and holder.boot_id is not None and holder.boot_id == here.boot_id
    if not same_machine or holder.pid_ns is None or holder.pid_ns != here.pid_ns:
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user: its start time may still tell it is another process
    except OSError:
        return False
    state = _stat(holder.pid)
    if state is None:
        return False
    if state[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return True
    started = _start_of(state)
    return holder.start_ticks is not None and started is not None and started != holder.start_ticks


@cache
def _boot_id() -> str | None:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _pid_ns() -> str | None:
    try:
        return os.readlink(PROC / "self/ns/pid")
    except OSError:
        return None


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces and parentheses)."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = raw.rsplit(b")", 1)[-1].decode("ascii", "replace").split()
    return fields or None


def _start_of(fields: list[str]) -> int | None:
    if len(fields) <= _START_FIELD or not fields[_START_FIELD].isdigit():
        return None
    return int(fields[_START_FIELD])


def _start(pid: int) -> int | None:
    fields = _stat(pid)
    return _start_of(fields) if fields else None
