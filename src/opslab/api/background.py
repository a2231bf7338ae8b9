"""Background loops inside ``opslab serve``: the responder's (``OPSLAB_RESPONDER_ENABLED=true``: first
resume any incident a crash interrupted, then poll the target every poll interval) and AutoOps'
continuous mode (started and stopped through ``/autoops/loop``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from opslab.autoops import LoopState
from opslab.errors import Conflict
from opslab.runtime import Runtime

log = logging.getLogger("opslab.api")


class Periodic:
    """``fn`` every ``interval_s`` in a thread until stopped; a failure is logged and tried next time."""

    def __init__(self, name: str, interval_s: float, fn: Callable[[], object]) -> None:
        self.name, self.interval_s, self.fn = name, max(0.5, interval_s), fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"opslab-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.fn()
            except Exception as exc:  # noqa: BLE001 - e.g. the database is away: the next round tries again
                log.warning("%s failed: %s", self.name, exc)


class ResponderLoop:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opslab-responder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                responder = self.runtime.responder()
            except Exception as exc:  # noqa: BLE001 - e.g. the sandbox is not up yet: try again later
                log.warning("responder not started: %s", exc)
                self._stop.wait(self.runtime.settings.responder_poll_interval_s)
                continue
            try:
                resumed = responder.resume_unfinished()
                if resumed:
                    log.info("resumed %d interrupted incident(s)", len(resumed))
            except Exception:  # noqa: BLE001 - one bad checkpoint must not stop the watch
                log.exception("resuming interrupted incidents failed")
            log.info("responder watching %s", responder.probe)
            responder.watch(self._stop)
            return


class AutoOpsLoop:
    """The continuous mode: build, learn, ask the responder on failure, up to a budget; stoppable, and a
    new loop continues from the persisted learning."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = LoopState(state="idle")

    def state(self) -> LoopState:
        with self._lock:
            return self._state.model_copy()

    def start(self, builds: int, interval_s: float) -> LoopState:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise Conflict(
                    "an autoops loop is already running; stop it first", details=self._state.model_dump()
                )
            self._stop.clear()
            self._state = LoopState(state="running", budget=builds)
            self._thread = threading.Thread(
                target=self._run, args=(builds, interval_s), name="opslab-autoops", daemon=True
            )
            self._thread.start()
            return self._state.model_copy()

    def stop(self, timeout_s: float = 30.0) -> LoopState:
        self._stop.set()
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive():
                self._state.state = "stopping"
        if thread is not None:
            thread.join(timeout_s)
        return self.state()

    def _run(self, builds: int, interval_s: float) -> None:
        auto = self.runtime.autoops()
        for _ in range(builds):
            if self._stop.is_set():
                break
            try:
                step = auto.run_once()
            except Exception as exc:  # noqa: BLE001 - one bad build is recorded, the loop goes on
                log.exception("autoops build failed to run")
                with self._lock:
                    self._state.last_error = str(exc)[:500]
            else:
                with self._lock:
                    self._state.done += 1
                    self._state.succeeded += step.build.result.status == "success"
            if interval_s:
                self._stop.wait(interval_s)
        with self._lock:
            self._state.state = "finished" if self._state.done >= builds else "idle"
