"""Trials at the speed of processes: a sandbox per worker, made once, in which each trial starts in
fresh namespaces of its own (``zygote_init``), instead of a new bubblewrap sandbox per trial.

What a bubblewrap sandbox costs per trial is mostly making its user, PID and network namespaces and its
~30 mounts (see docs/lab.md, "Where a trial's time goes"). A worker's zygote pays that once: bubblewrap
makes the worker's sandbox (the host's view, read-only; its own network and PID namespace; its root,
``/dev`` and the kernel's knobs read-only) and runs the zygote in it as PID 1. A worker runs one trial
at a time, so a trial shares the worker's network and PID namespaces with no other trial that runs:
whatever it leaves is killed before the next starts (``kill(-1)`` from PID 1, and its cgroup). Each
trial gets, as with a sandbox of its own: a user, mount and IPC namespace; only its own folders of the
run's (the others covered); a fresh ``/tmp``, ``/run``, ``/dev/shm`` and home; its cgroup (pids, memory)
and limits, set by the runner before it runs anything; no capabilities, no_new_privs and the seccomp
filter.

A zygote that cannot be made or fails its probe is not used: the plan falls back to a sandbox per trial
(the reason is kept in ``unavailable``).
"""

from __future__ import annotations

import array
import contextlib
import functools
import json
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from opslab import proc
from opslab.lab.isolation import pids, sandbox

SOURCE = Path(__file__).with_name("zygote_init.py")
START_TIMEOUT_S = 30.0  # for a trial's first process to be ready (its mounts made)
REQUEST_MAX = 1 << 20


# The zygote's program comes on a descriptor (its command line would show it to every trial).
LOADER = "import os,sys;exec(compile(os.fdopen(int(sys.argv.pop(1))).read(),'opslab-zygote','exec'))"


@functools.cache
def _program() -> bytes:
    return SOURCE.read_bytes()


def interpreter_view(view: tuple[str, ...]) -> list[str]:
    """The read-only binds the zygote's interpreter needs beyond ``view`` (a Python installed outside the
    system directories); each trial gets an empty folder there instead (``covered``)."""
    args: list[str] = []
    for path in covered(view):
        args += ["--ro-bind", path, path]
    return args


@functools.lru_cache(maxsize=64)
def covered(view: tuple[str, ...]) -> tuple[str, ...]:
    """The interpreter's installation where ``view`` does not hold it (asked for each trial: kept)."""
    held = [view[i + 2] for i, arg in enumerate(view) if arg == "--ro-bind" and i + 2 < len(view)]
    held += list(sandbox.SYSTEM_DIRS)
    prefixes = sandbox.outermost([sys.base_prefix, *sandbox.install_roots(os.path.realpath(sys.executable))])
    return tuple(p for p in prefixes if not any(p == h or p.startswith(h.rstrip("/") + "/") for h in held))


class Remote:
    """One trial's first process in a zygote, from the runner: ``pid`` (this machine's), ``go`` once it
    is in its cgroup, ``wait`` for its exit code (negative: the signal; None: the zygote is gone),
    ``kill``."""

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self.conn, self.pid = conn, pid
        self.error: str | None = None
        self._closed = False
        self._pidfd: int | None = None
        with contextlib.suppress(OSError):
            self._pidfd = os.pidfd_open(pid)

    def go(self) -> None:
        self.conn.send(b"G")

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            elif not self._closed:  # no pidfd on this kernel: by pid, while it is known to be ours
                os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int | None:
        self.conn.settimeout(None)
        while True:
            try:
                msg = self.conn.recv(8192)
            except OSError:
                return None
            if not msg:
                return None
            if msg[:1] == b"E":
                self.error = msg[1:].decode(errors="replace")
            elif msg[:1] == b"X":
                code = os.waitstatus_to_exitcode(int(msg[1:]))
                # As a sandbox per trial reports it (bubblewrap's exit status): a signal is 128 + its number.
                return None if self.error else (128 - code if code < 0 else code)

    def close(self) -> None:
        self._closed = True
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.conn.close()


class Zygote:
    """A worker's sandbox with the zygote in it; ``start`` a trial, one at a time."""

    def __init__(
        self,
        bwrap_args: list[str],
        key: object,
        covered: tuple[str, ...] = (),
        group: pids.TrialGroup | None = None,
    ) -> None:
        self.key, self.covered, self.group = key, covered, group
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        seccomp, program = sandbox.seccomp_fd(), sandbox.memory_fd("opslab-zygote", _program())
        argv = [
            *bwrap_args,
            "--",
            os.path.realpath(sys.executable),
            "-I",
            "-S",
            "-c",
            LOADER,
            str(program),
            str(theirs.fileno()),
            str(seccomp),
        ]
        self._err_read, err_write = os.pipe2(os.O_CLOEXEC)
        try:
            self._proc = proc.spawn(
                argv, stderr=err_write, tie_to_parent=False, pass_fds=(program, theirs.fileno(), seccomp)
            )
        finally:
            theirs.close()
            os.close(seccomp)
            os.close(program)
            os.close(err_write)

    def admit(self) -> None:
        """Into the worker's cgroup before the zygote starts anything (OSError if it cannot be)."""
        self._control.settimeout(START_TIMEOUT_S)
        try:
            msg, ancillary, _, _ = self._control.recvmsg(1, socket.CMSG_SPACE(12))
        except TimeoutError:
            raise OSError("the zygote did not start") from None
        if msg != b"H":
            raise OSError(f"the zygote did not start: {self.failure()}")
        pid = _sender(ancillary)
        if self.group is not None:
            self.group.admit(pid)
            # A trial over its memory is the one the kernel kills, never the zygote.
            with contextlib.suppress(OSError), open(f"/proc/{pid}/oom_score_adj", "w") as f:  # noqa: PTH123
                f.write("-1000")
        self._control.settimeout(None)
        self._control.send(b"G")

    def start(self, request: dict[str, object], stdout: int, stderr: int) -> Remote:
        """The trial's first process, ready and waiting for ``go``; OSError when it cannot be had."""
        body = json.dumps(request).encode()
        if len(body) > REQUEST_MAX:
            raise OSError("the trial's request is too large for the zygote")
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, len(body) + 4096)
            fds = array.array("i", [theirs.fileno(), stdout, stderr])
            self._control.sendmsg([b"t"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
            theirs.close()
            mine.send(body)
            mine.settimeout(START_TIMEOUT_S)
            msg, ancillary, _, _ = mine.recvmsg(8192, socket.CMSG_SPACE(12))
            if msg[:1] != b"R":
                reason = msg[1:].decode(errors="replace") if msg[:1] == b"E" else "the zygote is gone"
                raise OSError(f"the trial could not be started in its sandbox: {reason}")
            return Remote(mine, _sender(ancillary))
        except BaseException:
            theirs.close()
            mine.close()
            raise

    def probe(self) -> None:
        """One trial through every step but the harness's execution; OSError if a step fails."""
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        try:
            remote = self.start(_PROBE, null, null)
        finally:
            os.close(null)
        try:
            remote.go()
            code = remote.wait()
            if code != 0:
                raise OSError(remote.error or self.failure() or f"the probe trial ended with {code}")
        finally:
            remote.close()

    def failure(self) -> str:
        """What the sandbox said, if it ended."""
        if self._proc.alive:
            return ""
        os.set_blocking(self._err_read, False)
        with contextlib.suppress(OSError):
            return os.read(self._err_read, 4000).decode(errors="replace").strip()
        return ""

    @property
    def alive(self) -> bool:
        return self._proc.alive

    def close(self) -> None:
        self._control.close()  # the zygote reads EOF and ends; bubblewrap with it
        if self._proc.wait(5) is None:
            self._proc.stop(grace_s=0)
        os.close(self._err_read)
        if self.group is not None:
            self.group.release()


def _sender(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The sending process's pid (this machine's) from a message's credentials."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return int(struct.unpack("iII", data[:12])[0])
    raise OSError("no credentials came with the message")


_PROBE: dict[str, object] = {
    "probe": True,
    "uid": os.getuid(),
    "gid": os.getgid(),
    "mounts": [["tmpfs", "/tmp", "mode=1777"]],
    "cwd": "/",
    "argv": [],
    "env": {},
}


class Zygotes:
    """The zygote of each worker thread, made on its first trial (``for_thread``), for one key (the view
    it was made for); ``unavailable`` says why there is none."""

    def __reduce__(self) -> tuple[type[Zygotes], tuple[()]]:
        return (Zygotes, ())  # a copy elsewhere makes its own

    def __init__(self) -> None:
        self.unavailable: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Zygote] = []

    def for_thread(
        self,
        key: object,
        bwrap_args: Callable[[], list[str]],
        covered: tuple[str, ...] = (),
        group: Callable[[], pids.TrialGroup | None] = lambda: None,
    ) -> Zygote | None:
        if self.unavailable is not None:
            return None
        if self._pid != os.getpid():  # a forked worker: the zygotes it inherited are its parent's
            self._reset()
        current: Zygote | None = getattr(self._local, "zygote", None)
        if current is not None and current.key == key and current.alive:
            return current
        if current is not None:
            self._drop(current)
        made = Zygote(bwrap_args(), key, covered, group())
        try:
            made.admit()
            made.probe()
        except OSError as exc:
            self.unavailable = str(exc) or made.failure()
            made.close()
            return None
        with self._lock:
            self._all.append(made)
        self._local.zygote = made
        return made

    def _drop(self, zygote: Zygote) -> None:
        with self._lock:
            if zygote in self._all:
                self._all.remove(zygote)
        self._local.zygote = None
        zygote.close()

    def close(self) -> None:
        with self._lock:
            made, self._all = self._all, []
        for zygote in made:
            zygote.close()
