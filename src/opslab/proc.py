"""The one subprocess helper: argv lists (never a shell), a process group per child, mandatory timeouts,
kill of the whole group, and children that die with their parent.

    run(argv, timeout_s=…)   a short-lived program to completion -> ``ProcResult`` (a value, never raised)
    spawn(argv)              a long-lived child (a sandbox service, a supervised target) -> ``Child``

Deadlines of ``run`` are kept by one shared watchdog thread that kills the group while ``wait()`` blocks
in waitpid: ``Popen.wait(timeout)`` polls with sleeps, and a timer thread per call costs a millisecond,
which a lab run of thousands of short trials feels.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import heapq
import itertools
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from opslab.capped_log import LAST_READ, CappedLog, drain
from opslab.errors import Unavailable

StrPath = str | os.PathLike[str]
Sink = StrPath | int | IO[bytes] | None
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcResult:
    argv: tuple[str, ...]
    returncode: int | None
    duration_s: float
    timed_out: bool = False
    start_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.start_error is None


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> None:
    """In a child (or a forked worker): ask Linux to send ``sig`` when the parent thread exits. A worker
    that runs programs asks for SIGTERM and, in its handler, ``kill_running()`` before it exits."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))


_running: set[subprocess.Popen[bytes]] = set()
_remotes: set[Remote] = set()  # ``run_remote``'s processes still running
_running_lock = threading.Lock()
# Held while ``run`` starts a child and records it: once ``close_spawning`` holds it, every child this
# process started is in ``_running`` (or among its children), and no other starts. Re-entrant: a signal
# handler may run on a thread that is between those two steps.
_spawning = threading.RLock()
_spawning_closed = False


def close_spawning() -> None:
    """From now on ``run`` starts nothing (its callers get a ``start_error``); a start under way on another
    thread completes first, so that its child is there to be killed. For a dying worker's handler, before
    ``kill_running``: without it, a child forked between the kill and the worker's exit could outlive it
    (``setpriv --pdeathsig`` arms the death signal only once it runs; a parent gone before that is missed).
    Holds the lock for the rest of the process's life."""
    global _spawning_closed
    _spawning.acquire()
    _spawning_closed = True


def running_pids() -> set[int]:
    """The pids of this process's ``run`` children still running."""
    with _running_lock:
        return {p.pid for p in _running}


def kill_running() -> None:
    """SIGKILL the process group of every ``run`` child of this process still running (a dying worker's
    last act, so that no program outlives it unsupervised). Safe from a signal handler."""
    for p in list(_running):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
    for remote in list(_remotes):
        remote.kill()


def run(
    argv: Sequence[str],
    *,
    timeout_s: float,
    cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None,
    stdout: Sink | CappedLog = subprocess.DEVNULL,
    stderr: Sink | CappedLog = subprocess.DEVNULL,
    tie_to_parent: bool = False,
    pre_exec: Callable[[], None] | None = None,
    pass_fds: Sequence[int] = (),
    started: Callable[[int], None] | None = None,
) -> ProcResult:
    """Run ``argv`` in a new process group to completion or ``timeout_s`` (then the group is killed).

    ``stdout``/``stderr`` may be paths (opened for writing), descriptors or files, or a ``CappedLog``
    (a file of which only the first and last bytes are kept: ``capped_log``). ``tie_to_parent``
    kills the child when this process dies (through ``setpriv --pdeathsig`` where there is one, else at
    the cost of a fork instead of a vfork per call).
    ``pre_exec`` runs in the child before exec (a namespace to enter); if it raises, the child never
    execs and the result carries the ``start_error``. It costs a fork of this whole process instead of
    a vfork: where the child can wait for the parent instead, ``started`` runs here with the child's
    pid once it exists (within ``timeout_s``); if it raises, the child's group is killed and the result
    carries the ``start_error``. ``pass_fds`` are inherited by the child (at the same numbers); every
    other descriptor is closed in it."""
    start = time.perf_counter()
    capped = _Capped(stdout, stderr)
    with capped, _opened(capped.stdout) as out, _opened(capped.stderr) as err:
        with _spawning:
            if _spawning_closed:
                return ProcResult(tuple(argv), None, 0.0, start_error=f"not started {argv[0]!r}: stopping")
            try:
                proc = _popen(argv, cwd, env, out, err, tie_to_parent, pre_exec, pass_fds)
            except (OSError, subprocess.SubprocessError) as exc:
                return ProcResult(tuple(argv), None, 0.0, start_error=f"could not start {argv[0]!r}: {exc}")
            with _running_lock:
                _running.add(proc)
        capped.started()
        timed_out: list[bool] = []  # set by the watchdog's thread (an Event costs a Condition per child)

        def expire() -> None:
            timed_out.append(True)
            kill_group(proc)

        ticket = WATCHDOG.arm(timeout_s, expire)
        failed: str | None = None
        try:
            if started is not None:
                try:
                    started(proc.pid)
                except Exception as exc:  # noqa: BLE001 - a value: the child never runs unprepared
                    failed = f"could not start {argv[0]!r}: {exc}"
                    kill_group(proc, grace_s=0.0)
            if capped.logs:
                capped.pump(proc.pid)
            code = proc.wait()
        finally:
            WATCHDOG.disarm(ticket)
            with _running_lock:
                _running.discard(proc)
    duration = time.perf_counter() - start
    if failed is not None:
        return ProcResult(tuple(argv), None, duration, start_error=failed)
    if timed_out:
        return ProcResult(tuple(argv), None, duration, timed_out=True)
    return ProcResult(tuple(argv), code, duration)


class Remote(Protocol):
    """A process started elsewhere for this one (a sandbox's zygote), waiting until ``go``."""

    pid: int  # this machine's pid
    error: str | None  # why it could not run, once ``wait`` returned

    def go(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self) -> int | None: ...
    def close(self) -> None: ...


def run_remote(
    label: str,
    begin: Callable[[int, int], Remote],
    *,
    timeout_s: float,
    stdout: CappedLog | None = None,
    stderr: CappedLog | None = None,
    started: Callable[[int], None] | None = None,
) -> ProcResult:
    """``run`` for a process that ``begin(stdout_fd, stderr_fd)`` has started elsewhere: ``started`` runs
    with its pid before it is let go, its streams are kept as ``run`` keeps them, and at ``timeout_s`` it
    is killed (with it, what it started: its starter ends the rest)."""
    start = time.perf_counter()
    capped = _Capped(stdout or subprocess.DEVNULL, stderr or subprocess.DEVNULL)
    with capped, _opened(capped.stdout) as out, _opened(capped.stderr) as err:
        try:
            remote = begin(_fileno(out), _fileno(err))
        except OSError as exc:
            return ProcResult((label,), None, 0.0, start_error=f"could not start {label!r}: {exc}")
        capped.started()
        timed_out: list[bool] = []

        def expire() -> None:
            timed_out.append(True)
            remote.kill()

        ticket = WATCHDOG.arm(timeout_s, expire)
        failed: str | None = None
        with _running_lock:
            _remotes.add(remote)
        try:
            try:
                if started is not None:
                    started(remote.pid)
                remote.go()
            except Exception as exc:  # noqa: BLE001 - a value: the process never runs unprepared
                failed = f"could not start {label!r}: {exc}"
                remote.kill()
            if capped.logs and failed is None:
                capped.pump(remote.pid)
            code = remote.wait()
        finally:
            WATCHDOG.disarm(ticket)
            with _running_lock:
                _remotes.discard(remote)
            remote.close()
    duration = time.perf_counter() - start
    if failed is None and remote.error is not None:
        failed = f"could not start {label!r}: {remote.error}"
    if failed is not None:
        return ProcResult((label,), None, duration, start_error=failed)
    if timed_out:
        return ProcResult((label,), None, duration, timed_out=True)
    return ProcResult((label,), code, duration)


def _fileno(sink: int | IO[bytes] | None) -> int:
    if sink is None or (isinstance(sink, int) and sink < 0):
        return _devnull_w()
    return sink if isinstance(sink, int) else sink.fileno()


@functools.cache
def _devnull_w() -> int:
    return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


class Child:
    """A long-lived child in its own process group; ``stop()`` ends the whole group (TERM, then KILL)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout_s: float) -> int | None:
        """The exit code, or None when the child still runs after ``timeout_s``."""
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 5.0) -> int | None:
        kill_group(self.popen, grace_s=grace_s)
        return self.popen.poll()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn(
    argv: Sequence[str],
    *,
    cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None,
    stdout: Sink = subprocess.DEVNULL,
    stderr: Sink = subprocess.DEVNULL,
    tie_to_parent: bool = True,
    pass_fds: Sequence[int] = (),
    pre_exec: Callable[[], None] | None = None,
) -> Child:
    """Start a long-lived child in a new process group; by default it dies with this process.
    ``pass_fds`` and ``pre_exec`` as for ``run``."""
    with _opened(stdout, mode="ab") as out, _opened(stderr, mode="ab") as err:
        try:
            popen = _popen(argv, cwd, env, out, err, tie_to_parent, pre_exec=pre_exec, pass_fds=pass_fds)
        except OSError as exc:
            raise Unavailable(f"could not start {argv[0]!r}: {exc}", details={"argv": list(argv)}) from None
    return Child(popen)


def _popen(
    argv: Sequence[str],
    cwd: StrPath | None,
    env: Mapping[str, str] | None,
    out: int | IO[bytes] | None,
    err: int | IO[bytes] | None,
    tie_to_parent: bool,
    pre_exec: Callable[[], None] | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """A child in a process group of its own (so the group can be killed), stdin closed, never a shell."""
    if tie_to_parent and pre_exec is None and (tied := _tied_argv(argv, cwd, env)) is not None:
        argv, tie_to_parent = tied, False
    before_exec: Callable[[], None] | None = die_with_parent if tie_to_parent else None
    if pre_exec is not None:
        before_exec = pre_exec if not tie_to_parent else _both(die_with_parent, pre_exec)
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=out,
        stderr=err,
        stdin=_devnull(),
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        preexec_fn=before_exec,  # noqa: PLW1509 - ctypes calls and an ioctl, nothing that takes a lock
    )


def _tied_argv(argv: Sequence[str], cwd: StrPath | None, env: Mapping[str, str] | None) -> list[str] | None:
    """``argv`` behind ``setpriv --pdeathsig KILL``: the child is then started with a vfork, where a
    ``preexec_fn`` forces a fork of this whole process (milliseconds for a large worker, per trial). None
    where that cannot stand in exactly: no setpriv, no ``env`` to find the program in, or a program that
    would not start (Popen then reports it as it always has)."""
    setpriv = _setpriv()
    if setpriv is None or env is None or not argv:
        return None
    if argv[0] == setpriv:  # already started through setpriv (least privilege): one setpriv does both
        return [setpriv, "--pdeathsig", "KILL", *argv[1:]]
    program = argv[0]
    if os.sep in program:
        path = program if os.path.isabs(program) or cwd is None else os.path.join(cwd, program)
        found = os.access(path, os.X_OK) and not os.path.isdir(path)
    else:
        found = shutil.which(program, path=env.get("PATH", "")) is not None
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if found else None


@functools.cache
def _devnull() -> int:
    """One /dev/null for every child's stdin (``subprocess.DEVNULL`` opens and closes one per child)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin") if sys.platform == "linux" else None


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def run_both() -> None:
        first()
        second()

    return run_both


def kill_group(proc: subprocess.Popen[bytes], *, grace_s: float = 2.0) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            proc.poll()
            return
        try:
            proc.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


class _Capped:
    """The pipes of the streams given as ``CappedLog``: the child writes into them, ``pump`` copies while
    it runs (until it has exited: a descendant holding a pipe does not keep the run waiting)."""

    def __init__(self, stdout: Sink | CappedLog, stderr: Sink | CappedLog) -> None:
        self.logs: dict[int, CappedLog] = {}
        self._child_ends: list[int] = []
        self.stdout, self.stderr = self._sink(stdout), self._sink(stderr)

    def _sink(self, sink: Sink | CappedLog) -> Sink:
        if not isinstance(sink, CappedLog):
            return sink
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_end, False)
        sink.open()
        self.logs[read_end] = sink
        self._child_ends.append(write_end)
        return write_end

    def started(self) -> None:
        """The child has its ends: the parent's copies go, so EOF comes when the child's do."""
        for fd in self._child_ends:
            os.close(fd)
        self._child_ends.clear()

    def pump(self, pid: int) -> None:
        poller = select.poll()
        for fd in self.logs:
            poller.register(fd, select.POLLIN)
        try:
            exited: int | None = os.pidfd_open(pid)
        except OSError:  # before Linux 5.3: ask every tenth of a second
            exited = None
        try:
            if exited is not None:
                poller.register(exited, select.POLLIN)
            open_fds = set(self.logs)
            while True:
                ready = {fd for fd, _ in poller.poll(None if exited is not None else 100)}
                for fd in ready & open_fds:
                    if not drain(fd, self.logs[fd]):
                        poller.unregister(fd)
                        open_fds.discard(fd)
                if exited in ready or (exited is None and _has_exited(pid)):
                    for fd in open_fds:  # what is in the pipes now is what the child wrote
                        drain(fd, self.logs[fd], most=LAST_READ)
                    return
        finally:
            if exited is not None:
                os.close(exited)

    def __enter__(self) -> _Capped:
        return self

    def __exit__(self, *exc: object) -> None:
        self.started()  # a child that never started: the ends it would have had
        for fd, log in self.logs.items():
            os.close(fd)
            log.close()


def _has_exited(pid: int) -> bool:
    """Whether the child ``pid`` has exited (left to be reaped by ``wait``)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class _opened:
    """A sink given as a path is opened (and closed) here, as a plain descriptor (the child needs no file
    object); descriptors and files pass through."""

    def __init__(self, sink: Sink, mode: str = "wb") -> None:
        self.sink = sink
        self.flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if "a" in mode else os.O_TRUNC)
        self.fd: int | None = None

    def __enter__(self) -> int | IO[bytes] | None:
        if isinstance(self.sink, str | os.PathLike):
            self.fd = os.open(self.sink, self.flags, 0o666)
            return self.fd
        return self.sink

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


class Watchdog:
    """A single thread that runs callbacks at their deadlines (for thousands of short children)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._wakes_at = math.inf  # when the thread wakes next by itself (inf: only when notified)

    def arm(self, seconds: float, callback: Callable[[], None]) -> int:
        ticket = next(self._seq)
        entry = (time.monotonic() + seconds, ticket, callback)
        with self._cond:
            self._drop_cancelled()
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="opslab-proc-watchdog", daemon=True)
                self._thread.start()
            # Woken only for a deadline earlier than the one it waits for: with equal timeouts (a lab
            # run's trials) that is never, and no thread switch is paid per child. (The deadline it waits
            # for may be a cancelled one: it then wakes, drops it and waits for the next.)
            if entry[0] < self._wakes_at:
                self._cond.notify()
        return ticket

    def disarm(self, ticket: int) -> None:
        with self._cond:
            self._cancelled.add(ticket)

    def _drop_cancelled(self) -> None:
        """Pop cancelled deadlines off the top (under the lock): children mostly end in the order they
        started, so the heap stays as small as the number running."""
        while self._heap and self._heap[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._heap)[1])

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._drop_cancelled()
                if not self._heap:
                    self._wakes_at = math.inf
                    self._cond.wait()
                    continue
                deadline, ticket, callback = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._wakes_at = deadline
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            callback()


WATCHDOG = Watchdog()


def _fresh_watchdog_after_fork() -> None:
    # A forked worker inherits the watchdog object but not its thread: give it its own.
    global WATCHDOG
    WATCHDOG = Watchdog()


os.register_at_fork(after_in_child=_fresh_watchdog_after_fork)
