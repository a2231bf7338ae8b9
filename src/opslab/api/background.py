"""Background loops inside ``opslab serve``: the responder's (``OPSLAB_RESPONDER_ENABLED=true``: first
resume any incident a crash interrupted, then poll the target every poll interval) and AutoOps'
continuous mode (started and stopped through ``/autoops/loop``)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from opslab.autoops import LoopState
from opslab.errors import Conflict
from opslab.jobs import Job, JobRunner, LeasedService, LeaseKeeper, owner_id
from opslab.responder import COMMAND
from opslab.runtime import Runtime

log = logging.getLogger("opslab.api")
POLL_S = 1.0  # a standby loop looks for a start this often
COMMAND_POLL_S = 0.5  # the responder's holder looks for commands this often


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


class ResponderService:
    """The responder, once across every replica: with ``OPSLAB_RESPONDER_ENABLED=true`` each replica
    stands by for the ``service:responder`` lease, and the one holding it watches the target, resumes the
    incidents an earlier holder left, and does what people asked of the responder (its commands are jobs
    no worker takes). Its actions are fenced: a replica whose lease lapsed executes none. The kill switch
    is shared state (``service_state``), so engaging it on any replica stops actions on the holder.
    Disabled, the service holds nothing and commands run where they are asked (a manual trigger)."""

    NAME = "responder"  # its shared state: the kill switch

    def __init__(self, runtime: Runtime, *, enabled: bool) -> None:
        self.runtime, self.enabled = runtime, enabled
        self.holder = owner_id(f"responder:{uuid.uuid4().hex[:8]}")
        self.service = LeasedService(
            runtime.leases,
            "service:responder",
            self.holder,
            self._body,
            ttl_s=runtime.settings.service_lease_s,
        )
        self.runner = JobRunner(
            store=runtime.job_store,
            bus=runtime.bus,
            works=runtime.works,
            owner=self.holder,
            lease_s=runtime.settings.job_lease_s,
            resubmit=lambda job, front: None,  # the holder lists its queued commands itself
        )

    def start(self) -> None:
        if self.enabled:
            self.service.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self.runner.stopping.set()
        if self.enabled:
            self.service.stop(timeout_s)

    @property
    def active(self) -> bool:
        return self.service.active.is_set()

    def held_by(self) -> str | None:
        lease = self.service.holder_now()
        return lease.holder if lease else None

    def run_here(self, job_id: str) -> Job | None:
        """Do a command in this process (nobody holds the lease: the responder is not watching anywhere)."""
        return self.runner.execute(job_id)

    def kill_switch(self) -> tuple[bool, str]:
        found = self.runtime.service_states.read(self.NAME)
        state = found.state if found else {}
        return bool(state.get("halted")), str(state.get("reason", ""))

    def set_kill_switch(self, engaged: bool, reason: str) -> None:
        while True:
            found = self.runtime.service_states.read(self.NAME)
            state = {"halted": engaged, "reason": reason}
            if self.runtime.service_states.write(self.NAME, state, expected=found.version if found else 0):
                break
        self._apply_kill_switch()

    def _apply_kill_switch(self) -> None:
        try:
            responder = self.runtime.responder()
        except Conflict:
            return  # not configured: nothing acts here anyway
        halted, reason = self.kill_switch()
        if halted and not responder.halted:
            responder.halt(reason=reason or "kill switch")
        elif not halted and responder.halted:
            responder.unhalt()

    def _body(self, stop: threading.Event, keeper: LeaseKeeper) -> None:
        try:
            responder = self.runtime.responder()
        except Exception as exc:  # noqa: BLE001 - e.g. the sandbox is not up yet: stand by, try again
            log.warning("responder not started: %s", exc)
            stop.wait(self.runtime.settings.responder_poll_interval_s)
            return
        self.runtime.responder_fence = keeper.check
        self._apply_kill_switch()
        try:
            learned = responder.refresh_knowledge()
            if learned:
                log.info("knowledge learned on other replicas: %s", ", ".join(learned))
        except Exception:  # noqa: BLE001 - the folder's documents still serve
            log.exception("reading the shared knowledge documents failed")
        try:
            resumed = responder.resume_unfinished()
            if resumed:
                log.info("resumed %d interrupted incident(s)", len(resumed))
        except Exception:  # noqa: BLE001 - one bad checkpoint must not stop the watch
            log.exception("resuming interrupted incidents failed")
        log.info("responder watching %s (lease held by %s)", responder.probe, self.holder)
        commands = threading.Thread(
            target=self._commands, args=(stop,), name="responder-commands", daemon=True
        )
        commands.start()
        try:
            responder.watch(stop)
        finally:
            commands.join(30)
            self.runtime.responder_fence = None

    def _commands(self, stop: threading.Event) -> None:
        """Take what people asked of the responder (oldest first), and follow the shared kill switch."""
        while not stop.wait(COMMAND_POLL_S):
            try:
                self._apply_kill_switch()
                for job in self.runtime.job_store.queued(kind=COMMAND.kind):
                    if stop.is_set():
                        return
                    self.runner.execute(job.id)
            except Exception as exc:  # noqa: BLE001 - the database away: the next round tries again
                log.warning("responder commands: %s", exc)


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

    def stop(self, timeout_s: float = 10.0) -> LoopState:
        """Ask the loop to stop after the build in progress; the state once it did (or still ``stopping``,
        when the build in progress takes longer, or no replica runs the loop just now)."""
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
            self._pause(st.interval_s, stop)

    def _pause(self, seconds: float, stop: threading.Event) -> None:
        """Wait between builds, looking again at the shared state meanwhile: a stop asked on any replica
        ends the wait."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not stop.wait(min(left, POLL_S)):
            if self.state().state != "running":
                return


@dataclass(frozen=True)
class Service:
    """A long-lived loop of ``opslab serve`` as ``opslab.capabilities`` declares it: started with the
    service, stopped (in reverse order) before it ends; ``handle`` is what the capability's routes use."""

    name: str
    handle: object
    start: Callable[[], None]
    stop: Callable[[], None]


def responder_service(runtime: Runtime) -> Service:
    found = ResponderService(runtime, enabled=runtime.settings.responder_enabled)
    return Service("responder", found, found.start, found.stop)


def autoops_loop(runtime: Runtime) -> Service:
    loop = AutoOpsLoop(runtime)
    return Service("autoops", loop, loop.start_service, loop.stop_service)


def canary_recovery(runtime: Runtime) -> Service:
    """Targets of canaries that died mid-run (their hold lapsed) are put back by whichever process looks."""
    periodic = Periodic("canary-recovery", runtime.settings.canary_lease_s / 3, runtime.recover_canaries)
    return Service("canary-recovery", periodic, periodic.start, periodic.stop)
