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

The zygote's program is ``zygote.c``, compiled (``zygote_build``), else ``zygote_init.py`` run by this
interpreter: no compiler, a failed build, a native zygote that fails its probe, or
``lab_trial_zygote_native`` false. Both take the same steps and speak the same protocol; the request's
wire format is ``encode``'s. ``Zygotes`` keeps why the native one is not used (``native_unavailable``); a
worker's zygote shows which one it is in the process list (``/proc/self/fd/N opslab-zygote …``, or the
interpreter's ``-c`` with ``opslab-zygote``). The native one needs no interpreter in the worker's
sandbox: its trials get no cover over the interpreter's installation (``covered``).
"""

from __future__ import annotations

import array
import contextlib
import functools
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from opslab import proc
from opslab.lab.isolation import pids, sandbox
from opslab.lab.isolation.zygote_build import Program, native_program, python_program

START_TIMEOUT_S = 30.0  # for a trial's first process to be ready (its mounts made)
REQUEST_MAX = 1 << 20
WIRE_VERSION = "opslab-zygote/1"
RLIMITS_MAX, MOUNTS_MAX, STRINGS_MAX = 16, 1024, 1 << 16  # as both zygotes read it
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsencode's


def encode(request: Mapping[str, object]) -> bytes:
    """The request on the wire, version 1 (read by ``zygote_init.decode`` and ``zygote.c``): fields each
    ended by a NUL byte, numbers in decimal, nothing after the last.

        "opslab-zygote/1"  flags ("" or "probe")  uid  gid  cwd
        N  (resource  limit) x N          rlimits, soft = hard
        N  (kind  first  second) x N      mounts: "bind" source target, "tmpfs" target options
        N  (arg) x N                      argv
        N  (NAME=value) x N               environment

    OSError if the request cannot be written so (a NUL byte in a field, a name with ``=``, too many)."""
    rlimits = _items(request.get("rlimits", ()), RLIMITS_MAX)
    mounts = _items(request["mounts"], MOUNTS_MAX)
    argv = _items(request["argv"], STRINGS_MAX)
    env = request["env"]
    if not isinstance(env, Mapping) or len(env) > STRINGS_MAX:
        raise OSError("the trial's environment is not a mapping of at most 65,536 names")
    fields: list[object] = ["probe" if request.get("probe") else "", request["uid"], request["gid"]]
    fields += [request["cwd"], len(rlimits)]
    for pair in rlimits:
        fields += _items(pair, 2, exactly=True)
    fields.append(len(mounts))
    for op in mounts:
        fields += _items(op, 3, exactly=True)
    fields += [len(argv), *argv, len(env)]
    for name, value in env.items():
        if not isinstance(name, str) or not name or "=" in name:
            raise OSError(f"not an environment variable's name: {name!r}")
        fields.append(f"{name}={value}")
    texts = [WIRE_VERSION]
    for field in fields:
        if isinstance(field, str):
            texts.append(field)
        elif isinstance(field, int) and not isinstance(field, bool) and field >= 0:
            texts.append(str(field))
        else:
            raise OSError(f"not a field of the trial's request: {field!r}")
    # One encoding of the whole (as os.fsencode would each field): a trial's environment alone is ~40
    # fields, and this runs for every trial. A NUL byte inside a field shows as one NUL too many.
    out = "\0".join(texts).encode(_FS_ENCODING, _FS_ERRORS) + b"\0"
    if out.count(0) != len(texts):
        held = next(f for f in texts if "\0" in f)
        raise OSError(f"a field of the trial's request holds a NUL byte: {held[:80]!r}")
    if len(out) > REQUEST_MAX:
        raise OSError("the trial's request is too large for the zygote")
    return out


def _items(value: object, most: int, *, exactly: bool = False) -> list[object]:
    if not isinstance(value, list | tuple) or len(value) > most or exactly and len(value) != most:
        raise OSError(f"not {'exactly' if exactly else 'at most'} {most} items of the trial's request")
    return list(value)


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
    is in its cgroup (``gone``: it was let go with its request), ``wait`` for its exit code (negative:
    the signal; None: the zygote is gone), ``kill``."""

    def __init__(self, conn: socket.socket, pid: int, *, gone: bool = False) -> None:
        self.conn, self.pid, self.gone = conn, pid, gone
        self.error: str | None = None
        self._closed = False
        self._ended = False  # let go with its request, it ended before a handle on it could be had
        self._pidfd: int | None = None
        # Let go with its request, it may have run and ended by now; its zygote reaps it only after it
        # ended, so this pid is still its own or no one's (pids are handed out in turn, not reused at once).
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._ended = True
        except OSError:
            pass

    def go(self) -> None:
        if not self.gone:
            self.conn.send(b"G")
            self.gone = True

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            elif not self._closed and not self._ended:  # no pidfd on this kernel: by pid, while ours
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


@dataclass(frozen=True)
class Bridge:
    """The run's services a worker's trials reach through the bridge (``bridge.py``, ``argv`` up to its
    command): it is started in the worker's private network (``pre_exec``) and starts the sandbox."""

    argv: tuple[str, ...]
    pre_exec: Callable[[], None]


class Zygote:
    """A worker's sandbox with the zygote in it; ``start`` a trial, one at a time."""

    def __init__(
        self,
        bwrap_args: list[str],
        key: object,
        covered: tuple[str, ...] = (),
        group: pids.TrialGroup | None = None,
        program: Program | None = None,
        bridge: Bridge | None = None,
    ) -> None:
        self.key, self.covered, self.group = key, covered, group
        self.program = program or python_program()
        code = self.program.memory_fd()
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        seccomp = sandbox.seccomp_fd()
        fds = (code, theirs.fileno(), seccomp)
        argv = [*bwrap_args, "--", *self.program.argv(*fds)]
        if bridge is not None:  # in the worker's network, in front of its sandbox: its trials share it
            argv = [*bridge.argv, *(f"--pass-fd={fd}" for fd in fds), "--", *argv]
        self._err_read, err_write = os.pipe2(os.O_CLOEXEC)
        try:
            self._proc = proc.spawn(
                argv,
                stderr=err_write,
                tie_to_parent=False,
                pass_fds=fds,
                pre_exec=bridge.pre_exec if bridge is not None else None,
            )
        finally:
            theirs.close()
            os.close(seccomp)
            os.close(code)
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

    def start(self, request: Mapping[str, object], stdout: int, stderr: int, *, go: bool = False) -> Remote:
        """The trial's first process, ready and waiting for ``go``; OSError when it cannot be had. With
        ``go``, it is let go with its request: it runs as soon as it is ready (nothing to do with its pid
        before it runs; the runner still has it, and a handle on it, before ``start`` returns)."""
        return self.start_encoded(encode(request), stdout, stderr, go=go)

    def start_encoded(self, body: bytes, stdout: int, stderr: int, *, go: bool = False) -> Remote:
        """``start`` with the request as it goes on the wire (``encode``)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, len(body) + 4096)
            # The request (and the go) are waiting on the trial's socket when the zygote is woken for
            # it: one wake-up of the zygote a trial, not one for the socket and another for its request.
            mine.send(body)
            gone = False
            if go:
                with contextlib.suppress(BlockingIOError):  # no room: sent once it is ready, as without go
                    gone = mine.send(b"G", socket.MSG_DONTWAIT) == 1
            fds = array.array("i", [theirs.fileno(), stdout, stderr])
            self._control.sendmsg([b"t"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
            theirs.close()
            mine.settimeout(START_TIMEOUT_S)
            msg, ancillary, _, _ = mine.recvmsg(8192, socket.CMSG_SPACE(12))
            if msg[:1] != b"R":
                reason = msg[1:].decode(errors="replace") if msg[:1] == b"E" else "the zygote is gone"
                raise OSError(f"the trial could not be started in its sandbox: {reason}")
            return Remote(mine, _sender(ancillary), gone=gone)
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
        self.native_unavailable: str | None = None  # why the zygotes run the Python program
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Zygote] = []

    def for_thread(
        self,
        key: object,
        bwrap_args: Callable[[Program], list[str]],
        covered: tuple[str, ...] = (),
        group: Callable[[], pids.TrialGroup | None] = lambda: None,
        *,
        native: bool = True,
        bridge: Bridge | None = None,
    ) -> Zygote | None:
        """This thread's zygote for ``key``, made if it has none: of the native program unless ``native``
        is false or it cannot be had; ``bwrap_args`` for the program, ``covered`` for a Python one."""
        if self.unavailable is not None:
            return None
        if self._pid != os.getpid():  # a forked worker: the zygotes it inherited are its parent's
            self._reset()
        current: Zygote | None = getattr(self._local, "zygote", None)
        if current is not None and current.key == key and current.alive:
            return current
        if current is not None:
            self._drop(current)
        made = self._make(key, bwrap_args, covered, group, native, bridge)
        if made is None:
            return None
        with self._lock:
            self._all.append(made)
        self._local.zygote = made
        return made

    def _make(
        self,
        key: object,
        bwrap_args: Callable[[Program], list[str]],
        covered: tuple[str, ...],
        group: Callable[[], pids.TrialGroup | None],
        native: bool,
        bridge: Bridge | None,
    ) -> Zygote | None:
        """A zygote of the native program, else of the Python one, that passed its probe (or None)."""
        for program in self._programs(native):
            worker_group = group()
            cover = covered if program.kind == "python" else ()  # no interpreter in a native one's sandbox
            try:
                made = Zygote(bwrap_args(program), key, cover, worker_group, program, bridge)
            except OSError as exc:
                if worker_group is not None:
                    worker_group.release()
                if program.kind == "python":
                    raise
                self.native_unavailable = f"the native zygote could not be started: {exc}"
                continue
            try:
                made.admit()
                made.probe()
            except OSError as exc:
                reason = str(exc) or made.failure()
                made.close()
                if program.kind == "python":
                    self.unavailable = reason
                else:
                    self.native_unavailable = f"the native zygote failed its probe: {reason}"
                continue
            return made
        return None

    def _programs(self, native: bool) -> Iterator[Program]:
        if not native:
            self.native_unavailable = "lab_trial_zygote_native is false"
        if self.native_unavailable is None:
            program = native_program()
            if isinstance(program, Program):
                yield program
            else:
                self.native_unavailable = program
        yield python_program()

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
