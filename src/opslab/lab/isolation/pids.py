"""The pids limit of a sandboxed trial: a cgroup of its own under the cgroup ``pids`` controller
(``pids.max``), which the trial's first process joins before it executes, so the trial and everything it
starts count together, fork bombs included. When the trial ends, whatever is left of it is killed and
its cgroup removed.

A root runner needs it (root's processes are exempt from RLIMIT_NPROC, and a sandboxed trial is root in
its user namespace): where no ``pids`` hierarchy can be had, isolated runs are refused in one line,
unless the experiment says ``runtime.sandbox.pids_limit: 0``. Another user's trials are theirs: that
user's own RLIMIT_NPROC bounds them. The controller is the cgroup v1 ``pids`` hierarchy, or cgroup v2
with ``pids`` enabled (below the v2 root, where no process lives); runners' groups live in ``opslab/``,
and groups of runners that died are removed by ``sweep``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import time

BASE = "opslab"
RELEASE_WAIT_S = 5.0  # for the killed processes of a trial to be gone from its group


@functools.cache
def hierarchy() -> str | None:
    """The folder under which trial groups are made (``…/opslab``), made on first use; None where this
    process cannot have one (not root, no pids controller, a read-only cgroup file system)."""
    if os.geteuid() != 0:
        return None
    mounts = _mounts()
    for point, kind, options in mounts:
        if kind == "cgroup" and "pids" in options.split(","):
            return _base(point, v2=False)
    for point, kind, _ in mounts:
        if kind == "cgroup2" and "pids" in _read(os.path.join(point, "cgroup.controllers")).split():
            return _base(point, v2=True)
    return None


def _mounts() -> list[tuple[str, str, str]]:
    out = []
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            out.append((fields[4], tail[0], tail[2]))
    return out


def _base(point: str, *, v2: bool) -> str | None:
    base = os.path.join(point, BASE)
    try:
        if v2:
            _enable(point)
        os.makedirs(base, exist_ok=True)
        if v2:
            _enable(base)
        probe = os.path.join(base, f"probe-{secrets.token_hex(4)}")
        os.mkdir(probe)
        ok = os.path.exists(os.path.join(probe, "pids.max"))
        os.rmdir(probe)
    except OSError:
        return None
    return base if ok else None


def _enable(group: str) -> None:
    control = os.path.join(group, "cgroup.subtree_control")
    if "pids" not in _read(control).split():
        with open(control, "w") as f:
            f.write("+pids")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class TrialGroup:
    """One trial's cgroup: ``join`` in the child before it executes, ``release`` once the trial ended."""

    def __init__(self, base: str, limit: int) -> None:
        self.path = os.path.join(base, f"{_pid_namespace()}-{os.getpid()}-{secrets.token_hex(6)}")
        os.mkdir(self.path)
        try:
            with open(os.path.join(self.path, "pids.max"), "w") as f:
                f.write(str(limit))
        except OSError:
            os.rmdir(self.path)
            raise
        self._procs = os.path.join(self.path, "cgroup.procs")

    def join(self) -> None:
        """In the child, before exec (a write of "0": this process)."""
        self.admit(0)

    def admit(self, pid: int) -> None:
        """Move process ``pid`` (0: this one) into the group: what it starts from then on counts here."""
        fd = os.open(self._procs, os.O_WRONLY)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)

    def release(self) -> None:
        """Kill what is left of the trial and remove its group (left for ``sweep`` if it will not go)."""
        deadline = time.monotonic() + RELEASE_WAIT_S
        while True:
            for pid in _members(self.path):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)  # killed processes take a moment to leave the group


def _members(group: str) -> list[int]:
    return [int(p) for p in _read(os.path.join(group, "cgroup.procs")).split() if p.isdigit()]


def _pid_namespace() -> int:
    return os.stat("/proc/self/ns/pid").st_ino


def sweep() -> None:
    """Remove the trial groups of runners that are gone (named ``<pid namespace>-<pid>-…``: only those of
    this PID namespace are judged), with whatever still runs in them."""
    base = hierarchy()
    if base is None:
        return
    mine = f"{_pid_namespace()}-"
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            owner = name.removeprefix(mine).split("-", 1)[0]
            if not name.startswith(mine) or not owner.isdigit() or _alive(int(owner)):
                continue
            group = os.path.join(base, name)
            for pid in _members(group):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.rmdir(group)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
