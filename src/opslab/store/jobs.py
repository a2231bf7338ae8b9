"""Job repository: every state change is one conditional UPDATE, so two workers never both own a job."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from opslab.errors import Conflict, NotFound
from opslab.jobs import RETRYABLE_END, TERMINAL, Job, JobStatus, NewJob, ProgressEvent
from opslab.store.engine import write_tx
from opslab.store.tables import job_events, jobs

# States in which a job has an owner that must keep heartbeating.
HELD: tuple[JobStatus, ...] = ("running", "cancelling")


def _now() -> datetime:
    return datetime.now(UTC)


def _job(row: Any) -> Job:
    return Job.model_validate(dict(row._mapping))


def _get(conn: Connection, job_id: str) -> Job | None:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    return _job(row) if row else None


def _record_event(conn: Connection, job: Job) -> None:
    """Keep the job's new state as one progress event (same transaction as the change itself)."""
    conn.execute(insert(job_events).values(**_event_values(job)))


def _event_values(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "seq": job.seq,
        "status": job.status,
        "step": job.step,
        "pct": job.pct,
        "message": job.message,
        "updated_at": job.updated_at,
    }


def _find_existing(conn: Connection, new: NewJob) -> Job | None:
    if new.idempotency_key:
        row = conn.execute(
            select(jobs).where(jobs.c.kind == new.kind, jobs.c.idempotency_key == new.idempotency_key)
        ).first()
        if row:
            job = _job(row)
            if job.subject != new.subject:
                raise Conflict(
                    "Idempotency-Key: already used for a different request",
                    details={
                        "idempotency_key": new.idempotency_key,
                        "job_id": job.id,
                        "subject": job.subject,
                    },
                )
            return job
    if new.dedupe_key and not new.force:
        row = conn.execute(
            select(jobs).where(
                jobs.c.kind == new.kind,
                jobs.c.dedupe_key == new.dedupe_key,
                jobs.c.status.not_in(RETRYABLE_END),
            )
        ).first()
        if row:
            return _job(row)
    return None


def create_job(*, conn: Connection, new: NewJob) -> tuple[Job, bool]:
    """Insert, or return the job this request is a repeat of (same idempotency key or live dedupe key)."""
    existing = _find_existing(conn, new)
    if existing:
        return existing, False
    if new.force and new.dedupe_key:
        # The forced job supersedes: later plain requests return it, not the older one.
        conn.execute(
            update(jobs)
            .where(
                jobs.c.kind == new.kind,
                jobs.c.dedupe_key == new.dedupe_key,
                jobs.c.status.not_in(RETRYABLE_END),
            )
            .values(dedupe_key=None)
        )
    values = _new_values(new)
    conn.execute(insert(jobs).values(**values))
    job = Job.model_validate(values)
    _record_event(conn, job)
    return job, True


def _new_values(new: NewJob) -> dict[str, Any]:
    now = _now()
    return {
        "id": uuid.uuid4().hex,
        "kind": new.kind,
        "status": "queued",
        "pct": 0.0,
        "step": "Queued",
        "message": "Queued",
        "seq": 1,
        "attempts": 0,
        "max_attempts": new.max_attempts,
        "payload": new.payload,
        "subject": new.subject,
        "group_id": new.group_id,
        "dedupe_key": new.dedupe_key,
        "idempotency_key": new.idempotency_key,
        "created_at": now,
        "updated_at": now,
    }


class SqlJobStore:
    """``jobs.JobStore`` on a SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, new: NewJob) -> tuple[Job, bool]:
        try:
            with write_tx(self.engine) as conn:
                return create_job(conn=conn, new=new)
        except IntegrityError:
            # A concurrent identical request won the race (PostgreSQL): return its job.
            with self.engine.connect() as conn:
                existing = _find_existing(conn, new.model_copy(update={"force": False}))
            if existing is None:
                raise
            return existing, False

    def create_many(self, news: Sequence[NewJob]) -> list[Job]:
        """Many new jobs (a lab run's trial tasks) in one transaction: no keys to repeat, no lookups."""
        if any(n.idempotency_key or n.dedupe_key for n in news):
            raise ValueError("create_many takes jobs without idempotency or dedupe keys")
        rows = [_new_values(n) for n in news]
        if not rows:
            return []
        created = [Job.model_validate(r) for r in rows]
        with write_tx(self.engine) as conn:
            conn.execute(insert(jobs), rows)
            conn.execute(insert(job_events), [_event_values(j) for j in created])
        return created

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            return _get(conn, job_id)

    def ended_in_group(self, group_id: str, *, since: datetime | None = None) -> list[Job]:
        q = select(jobs).where(jobs.c.group_id == group_id, jobs.c.status.in_(TERMINAL))
        if since is not None:
            q = q.where(jobs.c.finished_at >= since)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(q.order_by(jobs.c.finished_at))]

    def list_jobs(self, *, kind: str, subject: str | None = None, limit: int = 50) -> list[Job]:
        q = select(jobs).where(jobs.c.kind == kind)
        if subject is not None:
            q = q.where(jobs.c.subject == subject)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit))
            return [_job(r) for r in rows]

    def queued(self, *, kind: str, limit: int = 50) -> list[Job]:
        """Jobs of ``kind`` waiting to be taken, oldest first (what a leased service takes itself)."""
        q = select(jobs).where(jobs.c.kind == kind, jobs.c.status == "queued")
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(q.order_by(jobs.c.created_at, jobs.c.id).limit(limit))]

    def delete(self, job_id: str) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(delete(job_events).where(job_events.c.job_id == job_id))
            conn.execute(delete(jobs).where(jobs.c.id == job_id))

    def _change(self, job_id: str, where: Sequence[Any], **values: Any) -> Job | None:
        now = _now()
        values.setdefault("updated_at", now)
        with write_tx(self.engine) as conn:
            res = conn.execute(
                update(jobs).where(jobs.c.id == job_id, *where).values(seq=jobs.c.seq + 1, **values)
            )
            if not res.rowcount:
                return None
            job = _get(conn, job_id)
            if job is not None:
                _record_event(conn, job)
            return job

    def events(self, job_id: str, *, after: int = 0) -> list[ProgressEvent]:
        """The job's progress events with ``seq`` above ``after``, oldest first."""
        q = (
            select(job_events)
            .where(job_events.c.job_id == job_id, job_events.c.seq > after)
            .order_by(job_events.c.seq)
        )
        with self.engine.connect() as conn:
            return [ProgressEvent.model_validate(dict(r._mapping)) for r in conn.execute(q)]

    def claim(self, job_id: str, owner: str) -> Job | None:
        """queued -> running for ``owner``; None when someone else has it, or it ended or was cancelled."""
        now = _now()
        return self._change(
            job_id,
            [jobs.c.status == "queued"],
            status="running",
            owner=owner,
            attempts=jobs.c.attempts + 1,
            started_at=now,
            heartbeat_at=now,
        )

    def progress(self, job_id: str, owner: str, *, step: str, pct: float, message: str) -> Job | None:
        return self._change(
            job_id,
            [jobs.c.status.in_(HELD), jobs.c.owner == owner],
            step=step,
            pct=pct,
            message=message,
            heartbeat_at=_now(),
        )

    def heartbeat(self, job_id: str, owner: str) -> JobStatus | None:
        with write_tx(self.engine) as conn:
            where = (jobs.c.id == job_id, jobs.c.status.in_(HELD), jobs.c.owner == owner)
            res = conn.execute(update(jobs).where(*where).values(heartbeat_at=_now()))
            if not res.rowcount:
                return None
            status: JobStatus | None = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
            return status

    def finish(
        self, job_id: str, owner: str, *, result: dict[str, Any] | None, step: str, message: str
    ) -> Job | None:
        """running -> succeeded; a job cancelled meanwhile ends ``cancelled``, keeping what it returned."""
        now = _now()
        done = self._change(
            job_id,
            [jobs.c.status == "running", jobs.c.owner == owner],
            status="succeeded",
            pct=100.0,
            step=step,
            message=message,
            result=result,
            error=None,
            finished_at=now,
        )
        return done or self.cancelled(job_id, owner, result=result, message="cancelled; its work had ended")

    def cancelled(
        self, job_id: str, owner: str, *, result: dict[str, Any] | None, message: str
    ) -> Job | None:
        """The owner stopped a job asked to cancel (or one that stopped itself): cancelled."""
        return self._change(
            job_id,
            [jobs.c.status.in_(HELD), jobs.c.owner == owner],
            status="cancelled",
            step="Cancelled",
            message=message,
            result=result,
            finished_at=_now(),
        )

    def fail(
        self, job_id: str, owner: str | None, *, error: dict[str, Any], step: str, message: str
    ) -> Job | None:
        if owner is None:
            return self._change(
                job_id,
                [jobs.c.status.not_in(TERMINAL)],
                status="failed",
                step=step,
                message=message,
                error=error,
                finished_at=_now(),
            )
        failed = self._change(
            job_id,
            [jobs.c.status == "running", jobs.c.owner == owner],
            status="failed",
            step=step,
            message=message,
            error=error,
            finished_at=_now(),
        )
        return failed or self.cancelled(job_id, owner, result=None, message=f"cancelled ({message})")

    def requeue(self, job_id: str, owner: str | None, *, error: dict[str, Any], message: str) -> Job | None:
        """Back to the queue after a failed attempt (``owner``) or an abandoned one (``owner=None``)."""
        where = [jobs.c.status == "running"]
        if owner:
            where.append(jobs.c.owner == owner)
        queued = self._change(
            job_id, where, status="queued", owner=None, error=error, message=message, step="Retrying"
        )
        if queued is None and owner:
            return self.cancelled(job_id, owner, result=None, message="cancelled before its retry")
        return queued

    def cancel(self, job_id: str) -> Job:
        now = _now()
        job = self._change(
            job_id,
            [jobs.c.status == "queued"],
            status="cancelled",
            step="Cancelled",
            message="cancelled before it started",
            finished_at=now,
        ) or self._change(
            job_id,
            [jobs.c.status == "running"],
            status="cancelling",
            step="Cancelling",
            message="cancel asked; stopping",
        )
        if job is not None:
            return job
        current = self.get(job_id)
        if current is None:
            raise NotFound(f"no job {job_id!r}", details={"id": job_id})
        if current.status in ("cancelling", "cancelled"):
            return current
        raise Conflict(
            f"job {job_id} has already ended ({current.status}); there is nothing to cancel",
            details={"id": job_id, "status": current.status},
        )

    def cancel_group(self, group_id: str) -> int:
        with self.engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.group_id == group_id, jobs.c.status.in_(("queued", "running"))
                    )
                ).scalars()
            )
        asked = 0
        for job_id in ids:
            try:
                self.cancel(job_id)
                asked += 1
            except Conflict:
                continue  # it ended meanwhile
        return asked

    def set_queue_ref(self, job_id: str, ref: str) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued").values(queue_ref=ref)
            )

    def stale(self, *, lease_s: float, queued_after_s: float) -> list[Job]:
        """Held jobs whose owner stopped heartbeating, and queued jobs nobody picked up for a while."""
        now = _now()
        q = select(jobs).where(
            or_(
                jobs.c.status.in_(HELD) & (jobs.c.heartbeat_at < now - timedelta(seconds=lease_s)),
                (jobs.c.status == "queued") & (jobs.c.updated_at < now - timedelta(seconds=queued_after_s)),
            )
        )
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(q.order_by(jobs.c.created_at).limit(500))]

    def reap(self, job: Job, *, lease_s: float) -> Job | None:
        """Deal with an abandoned job: back to the queue (or ``crashed`` when out of attempts); one that was
        being cancelled is ``cancelled``.

        Conditional on the heartbeat still being stale, so a slow-but-alive owner keeps its job.
        """
        cutoff = _now() - timedelta(seconds=lease_s)
        stale = [jobs.c.heartbeat_at < cutoff, jobs.c.owner == job.owner]
        error = {"code": "worker_lost", "message": f"worker {job.owner} stopped responding"}
        gone = self._change(
            job.id,
            [jobs.c.status == "cancelling", *stale],
            status="cancelled",
            step="Cancelled",
            message=f"cancelled (its worker {job.owner} was lost)",
            finished_at=_now(),
        )
        if gone is not None:
            return gone
        if job.attempts >= job.max_attempts:
            return self._change(
                job.id,
                [jobs.c.status == "running", *stale],
                status="crashed",
                step="Crashed",
                error=error,
                finished_at=_now(),
                message=f"gave up after {job.attempts} attempts: worker lost",
            )
        return self._change(
            job.id,
            [jobs.c.status == "running", *stale],
            status="queued",
            owner=None,
            step="Retrying",
            error=error,
            message="worker lost; retrying ahead of new work",
        )

    def touch_queued(self, job_id: str) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued").values(updated_at=_now())
            )
