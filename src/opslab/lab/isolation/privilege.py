"""Least privilege for a trial on the host (network ``full``, no image), where no sandbox runs: the harness
starts with no capabilities (bounding, inheritable and ambient sets emptied) and ``no_new_privs``, so a
harness run by root holds none of root's powers over the kernel (no ``setns``, ``mount``, ``ptrace`` of
the runner, module loading, raw sockets…) and no setuid program gives them back.

This costs nothing per trial where it can: capabilities and ``no_new_privs`` are a thread's, inherited by
what it starts, so a trial thread of a worker process forked for the run (``dedicated``) drops them for
its children once, with a few ``prctl`` calls. Elsewhere (the runner's own threads, a queue worker) the
harness is started through ``setpriv``, which ``opslab.proc`` merges with its ``--pdeathsig``; without
setpriv, the same calls run in the child before it executes (a fork instead of a vfork).
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import sys
import threading
from collections.abc import Callable

PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
CAP_SETPCAP = 8
SETPRIV_FLAGS = ("--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all")

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_restricted: set[tuple[int, int]] = set()  # (pid, thread id) that dropped them for its children
_lock = threading.Lock()


class PrivilegeError(OSError):
    """The trial's privileges could not be dropped (the trial then errors; it never runs with them)."""


@functools.cache
def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


def _can_drop_bounding() -> bool:
    try:
        with open("/proc/self/status") as f:
            eff = next(line for line in f if line.startswith("CapEff:"))
        return bool(int(eff.split()[1], 16) >> CAP_SETPCAP & 1)
    except (OSError, StopIteration, ValueError):
        return False


def restrict_children() -> None:
    """For this thread's children from now on: no capabilities, no_new_privs (irreversible for the
    thread; call it only on a thread that runs trials and nothing else)."""
    if _libc is None:
        raise PrivilegeError("dropping capabilities needs Linux")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # fails only where there are none
    if _can_drop_bounding():
        for cap in range(_last_cap() + 1):
            if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                err = ctypes.get_errno()
                raise PrivilegeError(err, f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(err)}")
    _clear_inheritable()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _clear_inheritable() -> None:
    assert _libc is not None
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(err, f"capget: {os.strerror(err)}")
    if data[0].inheritable or data[1].inheritable:
        data[0].inheritable = data[1].inheritable = 0
        if _libc.capset(ctypes.byref(header), data) != 0:
            err = ctypes.get_errno()
            raise PrivilegeError(err, f"capset: {os.strerror(err)}")


def thread_restricted() -> bool:
    return (os.getpid(), threading.get_native_id()) in _restricted


def restrict_this_thread() -> None:
    """``restrict_children`` once per thread."""
    key = (os.getpid(), threading.get_native_id())
    if key in _restricted:
        return
    restrict_children()
    with _lock:
        _restricted.add(key)


@functools.cache
def setpriv() -> str | None:
    return shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin") if sys.platform == "linux" else None


def wrap(argv: list[str], *, dedicated: bool) -> tuple[list[str], Callable[[], None] | None]:
    """``argv`` as started with least privilege, and the ``pre_exec`` that needs (None mostly): see the
    module docstring. ``dedicated``: this thread runs the run's trials and nothing else."""
    if thread_restricted():
        return argv, None
    if dedicated:
        restrict_this_thread()
        return argv, None
    tool = setpriv()
    if tool is None:
        return argv, restrict_children
    flags = [*SETPRIV_FLAGS, "--bounding-set=-all"] if _can_drop_bounding() else list(SETPRIV_FLAGS)
    return [tool, *flags, "--", *argv], None
