"""Background loops inside ``opslab serve``: the responder's (``OPSLAB_RESPONDER_ENABLED=true``: first
resume any incident a crash interrupted, then poll the target every poll interval) and AutoOps'
continuous mode (started and stopped through ``/autoops/loop``)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from opslab.autoops import LoopState
from opslab.errors import Conflict
from opslab.jobs import LeasedService, LeaseKeeper, owner_id
from opslab.runtime import Runtime

log = logging.getLogger("opslab.api")
POLL_S = 1.0  # a standby loop looks for a start this often


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
    new loop continues from the persisted learning.

    One loop across every replica: its budget and progress are shared state in the database (any replica
    starts, stops and reports it), and builds run only in the replica holding the ``service:autoops``
    lease. When that replica dies another takes the lease over and the loop goes on from the count the
    database has."""

    NAME = "autoops-loop"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.states = runtime.service_states
        self.service = LeasedService(
            runtime.leases,
            "service:autoops",
            owner_id(f"autoops:{uuid.uuid4().hex[:8]}"),
            self._body,
            ttl_s=runtime.settings.service_lease_s,
        )

    def start_service(self) -> None:
        self.service.start()

    def stop_service(self, timeout_s: float = 30.0) -> None:
        """This replica leaves the loop (another holds it on); the loop's state is untouched."""
        self.service.stop(timeout_s)

    def state(self) -> LoopState:
        found = self.states.read(self.NAME)
        state = LoopState.model_validate(found.state) if found else LoopState(state="idle")
        holder = self.service.holder_now()
        return state.model_copy(update={"holder": holder.holder if holder else None})

    def start(self, builds: int, interval_s: float) -> LoopState:
        current = self.states.read(self.NAME)
        if current is not None and current.state.get("state") in ("running", "stopping"):
            raise Conflict("an autoops loop is already running; stop it first", details=current.state)
        fresh = LoopState(state="running", budget=builds, interval_s=interval_s)
        if self.states.write(
            self.NAME, fresh.model_dump(mode="json"), expected=current.version if current else 0
        ):
            return self.state()
        raise Conflict("the autoops loop was changed meanwhile; try again", details={"loop": self.NAME})

    def stop(self, timeout_s: float = 30.0) -> LoopState:
        """Ask the loop to stop after the build in progress; the state once it did (or ``stopping``)."""
        self._change(
            lambda st: st.model_copy(update={"state": "stopping"}) if st.state == "running" else None
        )
        deadline = time.monotonic() + timeout_s
        while self.state().state == "stopping" and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.state()

    def _change(self, change: Callable[[LoopState], LoopState | None]) -> LoopState | None:
        """Compare-and-set: ``change`` the current state (None: leave it), again if it moved meanwhile."""
        while True:
            found = self.states.read(self.NAME)
            current = LoopState.model_validate(found.state) if found else LoopState(state="idle")
            new = change(current)
            if new is None:
                return current
            if self.states.write(
                self.NAME, new.model_dump(mode="json"), expected=found.version if found else 0
            ):
                return new

    def _body(self, stop: threading.Event, keeper: LeaseKeeper) -> None:
        while not stop.is_set():
            st = self.state()
            if st.state == "stopping" or (st.state == "running" and st.done >= st.budget):
                self._change(
                    lambda s: s.model_copy(update={"state": "finished" if s.done >= s.budget else "idle"})
                )
                continue
            if st.state != "running":
                stop.wait(POLL_S)
                continue
            keeper.check()  # fencing: a replica whose lease lapsed builds no more
            error: str | None = None
            ok = False
            try:
                ok = self.runtime.autoops().run_once().build.result.status == "success"
            except Exception as exc:  # noqa: BLE001 - one bad build is recorded, the loop goes on
                log.exception("autoops build failed to run")
                error = str(exc)[:500]

            def count(s: LoopState, ok: bool = ok, error: str | None = error) -> LoopState:
                update: dict[str, object] = {"done": s.done + 1, "succeeded": s.succeeded + ok}
                if error is not None:
                    update["last_error"] = error
                return s.model_copy(update=update)

            self._change(count)
            if st.interval_s:
                stop.wait(st.interval_s)
