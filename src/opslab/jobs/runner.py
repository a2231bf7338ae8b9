"""Runs one job: claim it, call its handler with a progress reporter, heartbeat, finish / retry / fail."""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from opslab.errors import InvalidInput, NotFound, OpslabError, PolicyViolation
from opslab.jobs.kinds import JobKind
from opslab.jobs.model import Job
from opslab.jobs.ports import JobStore, ProgressBus

log = logging.getLogger("opslab.jobs")

# Errors that another attempt cannot fix: the job fails at once.
PERMANENT = (InvalidInput, NotFound, PolicyViolation)


class _Progress:
    """The ``JobProgress`` a runner hands to a handler: persists each report, then publishes it."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self._runner, self.job = runner, job

    @property
    def stopping(self) -> threading.Event:
        return self._runner.stopping

    def report(self, step: str, pct: float, message: str | None = None) -> None:
        updated = self._runner.store.progress(
            self.job.id, self._runner.owner, step=step, pct=pct, message=message or step
        )
        if updated is not None:
            self.job = updated
            self._runner.bus.publish(updated.event())


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
        kinds: dict[str, JobKind],
        owner: str,
        lease_s: float,
        resubmit: Callable[[Job], None],
    ) -> None:
        self.store, self.bus, self.kinds, self.owner = store, bus, kinds, owner
        self.lease_s, self.resubmit = lease_s, resubmit
        # Set on shutdown: handlers that must not be cut off mid-change watch it (JobProgress.stopping).
        self.stopping = threading.Event()

    def execute(self, job_id: str) -> Job | None:
        job = self.store.claim(job_id, self.owner)
        if job is None:
            return None  # finished, or another worker holds it
        self.bus.publish(job.event())
        kind = self.kinds.get(job.kind)
        if kind is None:
            return self._fail(
                job, {"code": "unknown_kind", "message": f"no handler for job kind {job.kind!r}"}, "Failed"
            )
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(job.id, stop), daemon=True, name=f"heartbeat:{job.id[:8]}"
        )
        beat.start()
        try:
            result = kind.handler(job.payload, _Progress(self, job))
        except Exception as exc:  # noqa: BLE001 - a failed job is data, recorded below
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
                return self._fail(current, error, kind.failed_step)
            log.info(
                "job %s (%s) attempt %d failed, retrying: %s",
                job.id,
                job.kind,
                current.attempts,
                error["message"],
            )
            queued = self.store.requeue(
                job.id,
                self.owner,
                error=error,
                message=f"attempt {current.attempts} failed: {error['message']}",
            )
            if queued is not None:
                self.bus.publish(queued.event())
                self.resubmit(queued)
            return queued
        finally:
            stop.set()
            beat.join(5)
        done = self.store.finish(
            job.id, self.owner, result=result, step=kind.done_step, message=kind.done_step
        )
        if done is not None:
            self.bus.publish(done.event())
        return done

    def _fail(self, job: Job, error: dict[str, Any], step: str) -> Job | None:
        failed = self.store.fail(
            job.id, self.owner, error=error, step=step, message=str(error.get("message"))
        )
        if failed is not None:
            self.bus.publish(failed.event())
        return failed

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(max(0.2, self.lease_s / 3)):
            try:
                if not self.store.heartbeat(job_id, self.owner):
                    return
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried next interval
                log.warning("heartbeat of %s failed: %s", job_id, exc)


class Reaper:
    """Finds abandoned jobs (owner dead or silent past its lease) and gives them back to the backend."""

    def __init__(
        self, *, store: JobStore, bus: ProgressBus, lease_s: float, resubmit: Callable[[Job], None]
    ) -> None:
        self.store, self.bus, self.lease_s, self.resubmit = store, bus, lease_s, resubmit

    def sweep(self, *, startup: bool = False) -> int:
        count = 0
        for job in self.store.stale(
            lease_s=self.lease_s if not startup else 0.0, queued_after_s=self.lease_s
        ):
            if job.status == "queued":
                self.store.touch_queued(job.id)
                self.resubmit(job)
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
                self.resubmit(reaped)
            count += 1
        return count

    def run_forever(self, stop: threading.Event, interval: float | None = None) -> None:
        period = interval or max(0.5, self.lease_s / 2)
        while not stop.wait(period):
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("job reaper sweep failed: %s", exc)


def _heartbeat_older(job: Job, seconds: float) -> bool:
    if job.heartbeat_at is None:
        return True
    return (datetime.now(UTC) - job.heartbeat_at).total_seconds() > seconds
