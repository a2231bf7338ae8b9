"""A trial's cgroup: a group of its own under the cgroup ``pids`` controller (``pids.max``), which the
trial's first process joins as it starts, so the trial and everything it starts count together, fork
bombs and new sessions (``setsid``) included; a ``memory`` group beside it where the machine has that
controller and the experiment sets ``runtime.limits.memory_mb``. When the trial ends, whatever is left
of it is killed and its groups removed: in every mode, the host network's too.

A root runner needs it (root's processes are exempt from RLIMIT_NPROC, and a sandboxed trial is root in
its user namespace): where no ``pids`` hierarchy can be had, isolated runs are refused in one line,
unless the experiment says ``runtime.sandbox.pids_limit: 0``. Another user's trials are theirs: that
user's own RLIMIT_NPROC bounds them, and ``reaper`` ends what they leave behind. The controllers are
cgroup v1 hierarchies, or cgroup v2 with them enabled (below the v2 root, where no process lives);
runners' groups live in ``opslab/``, and groups of runners that died are removed by ``sweep``.
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
def hierarchy(controller: str = "pids") -> str | None:
    """The folder under which trial groups of ``controller`` (``pids``, ``memory``) are made (``…/opslab``),
    made on first use; None where this process cannot have one (not root, no such controller, a read-only
    cgroup file system)."""
    found = _mount_of(controller)
    return _base(found[0], v2=found[1], controller=controller) if found else None


def existing(controller: str) -> str | None:
    """``hierarchy``'s folder for ``controller`` where an earlier run made it, without making or probing
    one (a memory group made and removed to see that it can be costs a run's start ~5 ms)."""
    found = _mount_of(controller)
    base = os.path.join(found[0], BASE) if found else None
    return base if base and os.path.isdir(base) else None


def _mount_of(controller: str) -> tuple[str, bool] | None:
    """Where ``controller``'s hierarchy is mounted (cgroup v1 first) and whether it is v2; None for a
    runner that is not root or a machine without it."""
    if os.geteuid() != 0:
        return None
    mounts = _mounts()
    for point, kind, options in mounts:
        if kind == "cgroup" and controller in options.split(","):
            return point, False
    for point, kind, _ in mounts:
        if kind == "cgroup2" and controller in _read(os.path.join(point, "cgroup.controllers")).split():
            return point, True
    return None


def _mounts() -> list[tuple[str, str, str]]:
    out = []
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            out.append((fields[4], tail[0], tail[2]))
    return out


# The file that sets a group's limit, by controller and cgroup version.
_LIMIT_FILE = {("pids", False): "pids.max", ("pids", True): "pids.max"}
_LIMIT_FILE |= {("memory", False): "memory.limit_in_bytes", ("memory", True): "memory.max"}


def _base(point: str, *, v2: bool, controller: str) -> str | None:
    base = os.path.join(point, BASE)
    try:
        if v2:
            _enable(point, controller)
        os.makedirs(base, exist_ok=True)
        if v2:
            _enable(base, controller)
        probe = os.path.join(base, f"probe-{secrets.token_hex(4)}")
        os.mkdir(probe)
        ok = os.path.exists(os.path.join(probe, _LIMIT_FILE[controller, v2]))
        os.rmdir(probe)
    except OSError:
        return None
    return base if ok else None


def _enable(group: str, controller: str) -> None:
    control = os.path.join(group, "cgroup.subtree_control")
    if controller not in _read(control).split():
        with open(control, "w") as f:
            f.write(f"+{controller}")


def _limit_file(group: str, controller: str) -> str:
    v1 = os.path.join(group, _LIMIT_FILE[controller, False])
    return v1 if os.path.exists(v1) else os.path.join(group, _LIMIT_FILE[controller, True])


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class TrialGroup:
    """One trial's cgroup: ``join`` in the child before it executes (or ``admit`` it from the runner),
    ``release`` once the trial ended. Its ``pids`` group counts every process the trial starts, new
    sessions included, and ``release`` kills them all; a ``memory`` group beside it (``memory_bytes``,
    where the machine has the controller) caps their memory together."""

    def __init__(self, base: str, limit: int, *, memory_bytes: int | None = None) -> None:
        name = f"{_pid_namespace()}-{os.getpid()}-{secrets.token_hex(6)}"
        self.path = os.path.join(base, name)
        self.paths = [self.path]
        os.mkdir(self.path)
        try:
            _write(_limit_file(self.path, "pids"), str(limit) if limit else "max")
            memory = hierarchy("memory") if memory_bytes else None
            if memory is not None and memory != base:
                self.paths.append(os.path.join(memory, name))
                os.mkdir(self.paths[-1])
            if memory is not None:
                _write(_limit_file(self.paths[-1], "memory"), str(memory_bytes))
        except OSError:
            for path in reversed(self.paths):
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            raise
        self.memory_limited = memory is not None

    def join(self) -> None:
        """In the child, before exec (a write of "0": this process)."""
        self.admit(0)

    def admit(self, pid: int) -> None:
        """Move process ``pid`` (0: this one) into the group: what it starts from then on counts here."""
        for path in self.paths:
            fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)
            try:
                os.write(fd, str(pid).encode())
            finally:
                os.close(fd)

    def release(self) -> None:
        """Kill what is left of the trial and remove its groups (left for ``sweep`` if they will not go)."""
        for path in self.paths:
            _empty_and_remove(path)


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _empty_and_remove(group: str) -> None:
    deadline = time.monotonic() + RELEASE_WAIT_S
    while True:
        for pid in _members(group):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            os.rmdir(group)
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
    for base in {existing("pids"), existing("memory")} - {None}:
        assert base is not None
        _sweep(base)


def _sweep(base: str) -> None:
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
