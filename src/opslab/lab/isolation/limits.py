"""A trial's ``runtime.limits`` as the kernel enforces them.

    memory     the trial's cgroup (``memory``: all its processes together) where the machine has one,
               else each process's address space (RLIMIT_AS)
    cpu_s      each process's CPU time (RLIMIT_CPU: SIGXCPU, then SIGKILL)
    pids       the trial's cgroup (``pids``)
    workspace  the largest file a process may write (RLIMIT_FSIZE: EFBIG), and the workspace's size once
               the trial ended (a trial over it errors)
    tmp        the size of a sandboxed trial's private /tmp (bubblewrap's ``--size``)

The resource limits are set on the trial's first process before the harness runs, from the runner
(``prlimit``): on the sandbox's process while bubblewrap holds it (``sandbox.Admission``), or on the
host process as it starts; what it starts inherits them.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type here: the sandbox's probes import this module before the experiment's models
    from opslab.lab.config import Limits

MIB = 1024 * 1024


@dataclass(frozen=True)
class TrialLimits:
    memory_bytes: int | None = None
    cpu_s: float | None = None
    file_bytes: int | None = None
    tmp_bytes: int | None = None

    @classmethod
    def of(cls, limits: Limits) -> TrialLimits:
        return cls(
            memory_bytes=limits.memory_mb * MIB if limits.memory_mb else None,
            cpu_s=limits.cpu_s,
            file_bytes=limits.workspace_mb * MIB if limits.workspace_mb else None,
            tmp_bytes=limits.tmp_mb * MIB,
        )

    def rlimits(self, *, memory_in_cgroup: bool) -> list[tuple[int, int]]:
        """(resource, limit) pairs to set on the trial's first process."""
        out = []
        if self.cpu_s is not None:
            out.append((resource.RLIMIT_CPU, max(1, round(self.cpu_s))))
        if self.file_bytes is not None:
            out.append((resource.RLIMIT_FSIZE, self.file_bytes))
        if self.memory_bytes is not None and not memory_in_cgroup:
            out.append((resource.RLIMIT_AS, self.memory_bytes))
        return out


def apply(pid: int, rlimits: list[tuple[int, int]]) -> None:
    """Set ``rlimits`` on process ``pid`` (0: this one), soft and hard alike (a harness cannot raise
    them again)."""
    for which, value in rlimits:
        if pid == 0:
            resource.setrlimit(which, (value, value))
        else:
            resource.prlimit(pid, which, (value, value))


def tree_bytes(root: str) -> int:
    """Bytes of the regular files under ``root`` (links not followed)."""
    total = 0
    folders = [root]
    while folders:
        try:
            listing = os.scandir(folders.pop())
        except OSError:
            continue
        with listing as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total
