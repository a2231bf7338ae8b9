"""The run's control file and the runner's stops: how a user steers a run while it executes.

``RUN_DIR/control.json`` (``ControlFile``) is the switch ``opslab lab pause``, ``resume`` and ``stop``
flip::

    {"schema_version": 1, "state": "running" | "paused" | "stopped", "updated_at": "…", "reason": "…"}

The runner writes it (``running``) when it starts, before the first trial; a run without one (written by
an older runner) is running. The runner's pool asks a ``Gate`` before handing out each trial: while the
run is paused no trial starts, and trials already running finish; each pool slot waiting at the gate
leaves a marker in ``RUN_DIR/.held/`` (``held_slots``), so a paused run says when it holds everything.
Once it is stopped no trial starts again: the running ones finish and the run ends ``stopped``. Harnesses
at integration level ``sdk_control`` or ``sdk_full`` read the same file (``OPSLAB_CONTROL_PATH``) and may
pause, or stop, at their own safe points. Written atomically, so neither ever reads half a file.

A run has one ``RunStop``: SIGINT or SIGTERM (the CLI's runner), ``POST /lab/runs/{id}/cancel`` (the
service's job) and a runner shutting down all set it, from any thread, and the pool watches it while it
waits for trials. ``RunInterrupted`` is how the runner then ends: its running harnesses killed, the trials
that finished kept, the manifest saying ``interrupted`` (``paused`` when it was paused), ``--resume`` to
continue. It is a ``KeyboardInterrupt``, so no ``except Exception`` on the way out swallows it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from opslab.errors import OpslabError
from opslab.lab.artifacts import now, read_model, write_model
from opslab.lab.records import RunStatus, Timestamp

CONTROL_FILE = "control.json"
MIRROR_DIR = ".control"  # see mirror_control
HELD_DIR = ".held"  # one marker per pool slot waiting at the gate of a paused run (see Gate.wait)
ControlState = Literal["running", "paused", "stopped"]
POLL_S = 0.2  # how often a paused runner looks at the file again


class ControlFile(BaseModel):
    """``control.json``: the state the user asked for, when, and why."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    schema_version: int = 1
    state: ControlState = "running"
    updated_at: Timestamp | None = None
    reason: str | None = None


def control_path(run_dir: Path) -> Path:
    return run_dir / CONTROL_FILE


def held_slots(run_dir: Path) -> int:
    """How many of the runner's pool slots wait at the gate of this paused run now."""
    try:
        return len(os.listdir(run_dir / HELD_DIR))
    except OSError:
        return 0


def read_control(run_dir: Path) -> ControlFile:
    """The run's control file; a run without one is running. A broken file is ``InvalidInput``."""
    path = control_path(run_dir)
    if not path.is_file():
        return ControlFile()
    return read_model(path, ControlFile)


def ensure_control(run_dir: Path) -> None:
    """The control file as a run starts: written ``running`` unless the run has one already."""
    if not control_path(run_dir).is_file():
        # Not synced: a run whose file is lost (a crash before the disk had it) reads as running anyway.
        write_control(run_dir, "running", "run started", durable=False)


def write_control(
    run_dir: Path, state: ControlState, reason: str | None = None, *, durable: bool = True
) -> ControlFile:
    control = ControlFile(state=state, updated_at=now(), reason=reason)
    write_model(control_path(run_dir), control, durable=durable)
    if (run_dir / MIRROR_DIR).is_dir():
        write_model(run_dir / MIRROR_DIR / CONTROL_FILE, control)
    return control


def mirror_control(run_dir: Path) -> Path:
    """A folder holding only a live copy of the control file, which a sandboxed harness gets read-only:
    a file mounted by itself would stay the version it was when mounted (the file is replaced, not
    rewritten, on every change); a folder shows each new version. ``write_control`` keeps it current."""
    folder = run_dir / MIRROR_DIR
    folder.mkdir(exist_ok=True)
    try:
        current = read_control(run_dir)
    except OpslabError:  # a half-edited file: the runner's gate keeps its last state; show running
        current = ControlFile()
    write_model(folder / CONTROL_FILE, current)
    return folder


class Gate:
    """The pool's check before each trial. One ``stat`` when nothing changed: the file is read again only
    when its inode, size or mtime differ. A file that does not parse leaves the last state in force (a
    half-edited file must neither stop a run for good nor release a pause)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = os.fspath(control_path(run_dir))
        self.held_dir = os.fspath(run_dir / HELD_DIR)
        self._seen: tuple[int, int, int] | None = None
        self._state: ControlState = "running"

    def state(self) -> ControlState:
        try:
            st = os.stat(self.path)
        except OSError:
            self._seen, self._state = None, "running"
            return "running"
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        if seen != self._seen:
            try:
                with open(self.path, "rb") as f:
                    self._state = ControlFile.model_validate_json(f.read()).state
                self._seen = seen
            except (OSError, ValidationError):
                pass
        return self._state

    def paused(self) -> bool:
        return self.state() == "paused"

    def stopped(self) -> bool:
        return self.state() == "stopped"

    def wait(self, stopping: Callable[[], bool]) -> bool:
        """Return at once when the run is running (True) or stopped (False: no trial starts again); while
        it is paused, wait until it is resumed (True), stopped or the runner is stopping (False). While it
        waits, the slot says so with a marker under ``.held/`` (the runner's acknowledgement of the pause:
        a slot waiting here runs nothing and starts nothing)."""
        state = self.state()
        if state != "paused":
            return state == "running"
        os.makedirs(self.held_dir, exist_ok=True)
        marker = os.path.join(self.held_dir, f"{os.getpid()}-{threading.get_ident()}")
        with open(marker, "w"):
            pass
        try:
            while self.paused():
                if stopping():
                    return False
                time.sleep(POLL_S)
            return not self.stopped()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(marker)


class RunStop:
    """The run's one stop request: ``set`` from any thread (a signal handler, a job's cancel); the pools
    wait on ``fileno`` (readable once set) beside their trials, so none polls for it."""

    def __init__(self) -> None:
        self._set = False
        self.reason: str | None = None
        self._read, self._write = os.pipe2(os.O_CLOEXEC)
        self._callbacks: list[Callable[[], None]] = []
        # Re-entrant, and no Event: a signal's handler sets the stop in the main thread, maybe while that
        # thread is inside ``set`` or ``notify`` already (a plain lock would then wait for itself).
        self._lock = threading.RLock()

    def set(self, reason: str) -> None:
        with self._lock:
            if self._set:
                return
            self.reason = reason
            self._set = True
            callbacks = list(self._callbacks)
        with contextlib.suppress(OSError):  # closed: the run is over
            os.write(self._write, b"x")
        for callback in callbacks:
            callback()

    def notify(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the stop is set (at once if it is)."""
        with self._lock:
            if not self._set:
                self._callbacks.append(callback)
                return
        callback()

    def is_set(self) -> bool:
        return self._set

    def fileno(self) -> int:
        return self._read

    def interrupted(self) -> RunInterrupted:
        return RunInterrupted(self.reason or "a stop")

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> RunStop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunInterrupted(KeyboardInterrupt):
    """The runner stopped by a signal; ``status`` is what its manifest now says."""

    code = "interrupted"
    exit_code = 130

    def __init__(
        self, signal_name: str, *, run_dir: Path | None = None, status: RunStatus | None = None
    ) -> None:
        super().__init__(signal_name)
        self.signal_name, self.run_dir, self.status = signal_name, run_dir, status

    @property
    def message(self) -> str:
        if self.run_dir is None:
            return f"interrupted by {self.signal_name}"
        return (
            f"interrupted by {self.signal_name}: run {self.run_dir.name} is {self.status}, its running "
            f"trials stopped; continue it with `opslab lab resume --run-dir {self.run_dir}` (or "
            f"`opslab lab run EXPERIMENT --resume {self.run_dir.name}`)"
        )

    def to_dict(self) -> dict[str, Any]:
        details: dict[str, Any] = {"signal": self.signal_name}
        if self.run_dir is not None:
            details.update(run_id=self.run_dir.name, run_dir=str(self.run_dir), status=self.status)
        return {"code": self.code, "message": self.message, "details": details}


@contextlib.contextmanager
def interrupt_on_signals(stop: RunStop | None = None) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM set ``stop`` and raise ``RunInterrupted`` in the main thread —
    once: a second signal while the first is being handled is ignored, so the cleanup (killing harnesses,
    writing the manifest) is not cut short. Off the main thread, where handlers cannot be set, nothing
    changes (the stop is then the caller's to set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            name = signal.Signals(signum).name
            if stop is not None:
                stop.set(name)
            raise RunInterrupted(name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
