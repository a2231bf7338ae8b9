"""A sandboxed trial joins its pids group through bubblewrap (--info-fd / --block-fd) rather than a
pre_exec: the sandbox starts nothing before it is in the group, and a sandbox that cannot start is a
trial's start error, never a hang."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from opslab import proc
from opslab.lab.isolation import pids, sandbox

ROOT = os.geteuid() == 0
needs_groups = pytest.mark.skipif(
    not ROOT or shutil.which("bwrap") is None or pids.hierarchy() is None,
    reason="a root runner with bubblewrap and a pids hierarchy",
)


def test_a_child_the_runner_cannot_prepare_is_killed_and_reported_not_run() -> None:
    children: list[int] = []

    def refuse(pid: int) -> None:
        children.append(pid)
        raise OSError(f"no group for {pid}")

    res = proc.run(["sleep", "30"], timeout_s=60, started=refuse)
    assert res.start_error is not None and "no group for" in res.start_error and not res.ok
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(children[0], 0)


@needs_groups
def test_the_sandbox_and_what_it_starts_are_in_the_trials_group_its_monitor_outside_is_not() -> None:
    base = pids.hierarchy()
    assert base is not None
    group = pids.TrialGroup(base, 64)
    admission = sandbox.Admission(group)
    seen: dict[int, int] = {}  # member -> its parent
    monitor: list[int] = []

    def admit_then_look(pid: int) -> None:
        admission.started(pid)
        monitor.append(pid)
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:  # the sandbox, then the command it starts
            seen.update((m, _parent(m)) for m in _members(group.path))
            time.sleep(0.01)

    try:
        argv = ["bwrap", *sandbox.namespaces()[1:], "--unshare-net", "--ro-bind", "/", "/", *admission.args()]
        res = proc.run(
            [*argv, "--", "sleep", "2"], timeout_s=60, pass_fds=admission.fds, started=admit_then_look
        )
    finally:
        admission.close()
        group.release()
    assert res.ok, res
    assert len(seen) >= 2 and monitor[0] not in seen
    assert all(parent == monitor[0] or parent in seen for parent in seen.values())


@needs_groups
def test_a_sandbox_that_dies_before_it_is_ready_is_a_start_error_not_a_hang() -> None:
    base = pids.hierarchy()
    assert base is not None
    group = pids.TrialGroup(base, 64)
    admission = sandbox.Admission(group)
    try:
        argv = ["bwrap", "--no-such-option", *admission.args(), "--", "true"]
        res = proc.run(argv, timeout_s=60, pass_fds=admission.fds, started=admission.started)
    finally:
        admission.close()
        group.release()
    assert res.start_error is not None and "before its sandbox was ready" in res.start_error


def _members(group: str) -> list[int]:
    with open(os.path.join(group, "cgroup.procs")) as f:
        return [int(p) for p in f.read().split()]


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
