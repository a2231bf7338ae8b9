"""Job repository: every state change is one conditional UPDATE, so two workers never both own a job."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from opslab.errors import Conflict
from opslab.jobs import Job, NewJob, ProgressEvent
from opslab.store.engine import write_tx
from opslab.store.tables import job_events, jobs


def _now() -> datetime:
    return datetime.now(UTC)


def _job(row: Any) -> Job:
    return Job.model_validate(dict(row._mapping))


def _get(conn: Connection, job_id: str) -> Job | None:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    return _job(row) if row else None


def _record_event(conn: Connection, job: Job) -> None:
    """Keep the job's new state as one progress event (same transaction as the change itself)."""
    conn.execute(
        insert(job_events).values(
            job_id=job.id,
            seq=job.seq,
            status=job.status,
            step=job.step,
            pct=job.pct,
            message=job.message,
            updated_at=job.updated_at,
        )
    )


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
                jobs.c.kind == new.kind, jobs.c.dedupe_key == new.dedupe_key, jobs.c.status != "failed"
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
            .where(jobs.c.kind == new.kind, jobs.c.dedupe_key == new.dedupe_key, jobs.c.status != "failed")
            .values(dedupe_key=None)
        )
    now = _now()
    values = {
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
        "dedupe_key": new.dedupe_key,
        "idempotency_key": new.idempotency_key,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(insert(jobs).values(**values))
    job = Job.model_validate(values)
    _record_event(conn, job)
    return job, True


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

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            return _get(conn, job_id)

    def list_jobs(self, *, kind: str, subject: str | None = None, limit: int = 50) -> list[Job]:
        q = select(jobs).where(jobs.c.kind == kind)
        if subject is not None:
            q = q.where(jobs.c.subject == subject)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit))
            return [_job(r) for r in rows]

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
        """queued -> running for ``owner``; None when someone else has it or it is finished."""
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
            [jobs.c.status == "running", jobs.c.owner == owner],
            step=step,
            pct=pct,
            message=message,
            heartbeat_at=_now(),
        )

    def heartbeat(self, job_id: str, owner: str) -> bool:
        with write_tx(self.engine) as conn:
            res = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == "running", jobs.c.owner == owner)
                .values(heartbeat_at=_now())
            )
            return bool(res.rowcount)

    def finish(
        self, job_id: str, owner: str, *, result: dict[str, Any], step: str, message: str
    ) -> Job | None:
        now = _now()
        return self._change(
            job_id,
            [jobs.c.status == "running", jobs.c.owner == owner],
            status="done",
            pct=100.0,
            step=step,
            message=message,
            result=result,
            error=None,
            finished_at=now,
        )

    def fail(
        self, job_id: str, owner: str | None, *, error: dict[str, Any], step: str, message: str
    ) -> Job | None:
        where = [jobs.c.status == "running", jobs.c.owner == owner] if owner else [jobs.c.status != "done"]
        return self._change(
            job_id, where, status="failed", step=step, message=message, error=error, finished_at=_now()
        )

    def requeue(self, job_id: str, owner: str | None, *, error: dict[str, Any], message: str) -> Job | None:
        """Back to the queue after a failed attempt (``owner``) or an abandoned one (``owner=None``)."""
        where = [jobs.c.status == "running"]
        if owner:
            where.append(jobs.c.owner == owner)
        return self._change(
            job_id, where, status="queued", owner=None, error=error, message=message, step="Retrying"
        )

    def stale(self, *, lease_s: float, queued_after_s: float) -> list[Job]:
        """Running jobs whose owner stopped heartbeating, and queued jobs nobody picked up."""
        now = _now()
        q = select(jobs).where(
            or_(
                (jobs.c.status == "running") & (jobs.c.heartbeat_at < now - timedelta(seconds=lease_s)),
                (jobs.c.status == "queued") & (jobs.c.updated_at < now - timedelta(seconds=queued_after_s)),
            )
        )
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(q.limit(500))]

    def reap(self, job: Job, *, lease_s: float) -> Job | None:
        """Give an abandoned running job back to the queue (or fail it when out of attempts).

        Conditional on the heartbeat still being stale, so a slow-but-alive owner keeps its job.
        """
        cutoff = _now() - timedelta(seconds=lease_s)
        where = [jobs.c.status == "running", jobs.c.heartbeat_at < cutoff]
        error = {"code": "worker_lost", "message": f"worker {job.owner} stopped responding"}
        if job.attempts >= job.max_attempts:
            return self._change(
                job.id,
                where,
                status="failed",
                step="Failed",
                error=error,
                finished_at=_now(),
                message=f"gave up after {job.attempts} attempts: worker lost",
            )
        return self._change(
            job.id,
            where,
            status="queued",
            owner=None,
            step="Retrying",
            error=error,
            message="worker lost; retrying",
        )

    def touch_queued(self, job_id: str) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.status == "queued").values(updated_at=_now())
            )
