"""Runs one job: claim it, run its work with a context, heartbeat, then finish / retry / fail / cancel.

Ownership is the job row's lease: ``claim`` is a conditional UPDATE (queued -> running, owner set,
attempts + 1), every heartbeat renews it only while the owner still holds the job, and every later write
is conditional on that owner. A worker that lost its job (reaped after a silence, or cancelled and taken
over) cannot write over the next owner: its writes match no row (fencing by owner and state).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from opslab.errors import InvalidInput, NotFound, OpslabError, PolicyViolation
from opslab.jobs.model import Job, JobStatus
from opslab.jobs.ports import JobStore, ProgressBus
from opslab.jobs.work import AnyWork, Cancelled

log = logging.getLogger("opslab.jobs")

# Errors that another attempt cannot fix: the job fails at once.
PERMANENT = (InvalidInput, NotFound, PolicyViolation)
Resubmit = Callable[[Job, bool], None]  # (job, ahead of new work)


class _Context:
    """The ``WorkContext`` a runner hands to the work: persists each report, then publishes it."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self._runner, self.job = runner, job
        self._cancelled = threading.Event()

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempts

    @property
    def cancelled(self) -> threading.Event:
        return self._cancelled

    @property
    def stopping(self) -> threading.Event:
        return self._runner.stopping

    def report(self, step: str, pct: float, message: str | None = None) -> None:
        updated = self._runner.store.progress(
            self.job.id, self._runner.owner, step=step, pct=pct, message=message or step
        )
        if updated is None:
            return
        self.job = updated
        if updated.status == "cancelling":
            self._cancelled.set()
        self._runner.bus.publish(updated.event())

    def observe(self, status: JobStatus | None) -> None:
        """What a heartbeat saw: a cancel asked, or the job no longer ours (stop all the same)."""
        if status != "running":
            self._cancelled.set()


def owner_id(suffix: str = "") -> str:
    base = f"{socket.gethostname()}:{os.getpid()}"
    return f"{base}:{suffix}" if suffix else base


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` names a process on this host that no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class JobRunner:
    def __init__(
        self,
        *,
        store: JobStore,
        bus: ProgressBus,
        works: Mapping[str, AnyWork],
        owner: str,
        lease_s: float,
        resubmit: Resubmit,
    ) -> None:
        self.store, self.bus, self.works, self.owner = store, bus, works, owner
        self.lease_s, self.resubmit = lease_s, resubmit
        # Set on shutdown: work that must not be cut off mid-change watches it (WorkContext.stopping).
        self.stopping = threading.Event()

    def execute(self, job_id: str) -> Job | None:
        job = self.store.claim(job_id, self.owner)
        if job is None:
            return None  # finished, cancelled, or another worker holds it
        self.bus.publish(job.event())
        work = self.works.get(job.kind)
        if work is None:
            error = {"code": "unknown_kind", "message": f"no handler for job kind {job.kind!r}"}
            return self._fail(job, error, "Failed")
        ctx = _Context(self, job)
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(ctx, stop), daemon=True, name=f"heartbeat:{job.id[:8]}"
        )
        beat.start()
        try:
            result = work.execute(job.payload, ctx)
        except Cancelled as exc:
            return self._cancelled(job, work.spec.dump(exc.result), exc.reason)
        except Exception as exc:  # noqa: BLE001 - a failed job is data, recorded below
            if ctx.cancelled.is_set():
                return self._cancelled(job, None, f"cancelled ({type(exc).__name__}: {exc})")
            return self._failed_attempt(job, work, exc)
        finally:
            stop.set()
            beat.join(5)
        step = work.spec.done_step
        done = self.store.finish(job.id, self.owner, result=result, step=step, message=step)
        if done is not None:
            self.bus.publish(done.event())
        return done

    def _failed_attempt(self, job: Job, work: AnyWork, exc: Exception) -> Job | None:
        error = (
            exc.to_dict()
            if isinstance(exc, OpslabError)
            else {
                "code": "operation_failed",
                "message": f"{type(exc).__name__}: {exc}",
                "details": {"traceback": traceback.format_exc(limit=8)},
            }
        )
        current = self.store.get(job.id) or job
        if isinstance(exc, PERMANENT) or current.attempts >= current.max_attempts:
            log.warning("job %s (%s) failed: %s", job.id, job.kind, error["message"])
            return self._fail(current, error, work.spec.failed_step)
        log.info("job %s (%s) attempt %d failed, retrying: %s", job.id, job.kind, current.attempts, error)
        queued = self.store.requeue(
            job.id, self.owner, error=error, message=f"attempt {current.attempts} failed: {error['message']}"
        )
        if queued is not None:
            self.bus.publish(queued.event())
            self.resubmit(queued, False)
        return queued

    def _cancelled(self, job: Job, result: dict[str, Any] | None, reason: str) -> Job | None:
        ended = self.store.cancelled(job.id, self.owner, result=result, message=reason)
        if ended is not None:
            self.bus.publish(ended.event())
        return ended

    def _fail(self, job: Job, error: dict[str, Any], step: str) -> Job | None:
        failed = self.store.fail(
            job.id, self.owner, error=error, step=step, message=str(error.get("message"))
        )
        if failed is not None:
            self.bus.publish(failed.event())
        return failed

    def _heartbeat(self, ctx: _Context, stop: threading.Event) -> None:
        while not stop.wait(max(0.2, min(self.lease_s / 3, 2.0))):
            try:
                status = self.store.heartbeat(ctx.job_id, self.owner)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried next interval
                log.warning("heartbeat of %s failed: %s", ctx.job_id, exc)
                continue
            ctx.observe(status)
            if status is None:
                log.warning("job %s is no longer ours (reaped or cancelled): stopping it", ctx.job_id)
                return


class Reaper:
    """Finds abandoned work and deals with it: a running job whose owner died or went silent past its
    lease goes back to the queue ahead of new work (or is ``crashed`` when out of attempts); a cancelling
    one whose owner died is ``cancelled``; a queued job whose queue message is gone is queued again."""

    def __init__(self, *, store: JobStore, bus: ProgressBus, lease_s: float, resubmit: Resubmit) -> None:
        self.store, self.bus, self.lease_s, self.resubmit = store, bus, lease_s, resubmit
        self.ensure: Callable[[Job], None] | None = None  # the backend's "still queued?" check

    def sweep(self, *, startup: bool = False) -> int:
        count = 0
        for job in self.store.stale(lease_s=0.0 if startup else self.lease_s, queued_after_s=self.lease_s):
            if job.status == "queued":
                self.store.touch_queued(job.id)
                (self.ensure or (lambda j: self.resubmit(j, False)))(job)
                count += 1
                continue
            dead = owner_is_dead(job.owner)
            if not dead and not _heartbeat_older(job, self.lease_s):
                continue
            reaped = self.store.reap(job, lease_s=0.0 if dead else self.lease_s)
            if reaped is None:
                continue
            self.bus.publish(reaped.event())
            if reaped.status == "queued":
                self.resubmit(reaped, True)
            count += 1
        return count

    def run_forever(self, stop: threading.Event, interval: float | None = None) -> None:
        period = interval or max(0.5, min(self.lease_s / 2, 5.0))
        while not stop.wait(period):
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again (a database outage)
                log.warning("job reaper sweep failed: %s", exc)


def _heartbeat_older(job: Job, seconds: float) -> bool:
    if job.heartbeat_at is None:
        return True
    return (datetime.now(UTC) - job.heartbeat_at).total_seconds() > seconds
