"""What a host trial leaves running where the runner may make no cgroup (not root).

The process that runs such trials becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``): a descendant
whose parent exits — a daemon, a ``setsid`` child — is re-parented to it instead of to init. When a trial
has ended, its process group is gone; its children that carry the trial's id in their environment
(``OPSLAB_TRIAL_ID``, which every harness is started with) are killed, and so are their own children as
they come to the subreaper in turn. A process that rewrote its environment is not recognised: only a
cgroup (a root runner) contains a trial that hides.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
import time

from opslab import proc

PR_SET_CHILD_SUBREAPER = 36
ROUNDS = 20  # kill, wait for the orphans' children to come over, again


@functools.cache
def _subreaper(pid: int) -> bool:
    """Make this process (``pid``: per process, a forked worker asks again) a child subreaper."""
    if sys.platform != "linux":
        return False
    done: int = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    return done == 0


def adopt_orphans() -> bool:
    """From now on, what a trial leaves behind comes to this process (idempotent)."""
    return _subreaper(os.getpid())


def end_leftovers(trial_id: str) -> int:
    """Kill this process's children (orphans re-parented to it) started for ``trial_id``; their count."""
    marker = f"OPSLAB_TRIAL_ID={trial_id}".encode()
    killed = 0
    for _ in range(ROUNDS):
        # Most trials leave nothing: then every child is a harness still running, and no environment is read.
        orphans = set(_children()) - proc.running_pids()
        found = [pid for pid in orphans if marker in _environ(pid)]
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in found:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        killed += len(found)
        time.sleep(0.005)  # their children are re-parented as they die
    if killed or orphans:
        _reap_zombies()
    return killed


def _reap_zombies() -> None:
    """Wait for children that exited and that nothing else waits for (orphans of earlier trials that
    ended by themselves): never for a harness ``proc.run`` is waiting for."""
    running = proc.running_pids()
    for pid in _children():
        if pid in running or _state(pid) != "Z":
            continue
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return ""


def _children() -> list[int]:
    """This process's children that orphans are among: Linux lists children per thread, and hands an
    orphan to the subreaper's first live thread, its main one (one small read, not one per thread)."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return b""
