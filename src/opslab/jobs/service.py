"""JobService: submit (idempotent), read, cancel, and stream the progress of jobs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Container

from anyio import to_thread

from opslab.errors import NotFound, Unavailable
from opslab.jobs.model import Job, NewJob, ProgressEvent
from opslab.jobs.ports import Backend, JobStore, ProgressBus

_JOB_ID = re.compile(r"[0-9a-fA-F-]{1,36}")


class JobService:
    def __init__(self, *, store: JobStore, backend: Backend, bus: ProgressBus) -> None:
        self.store, self.backend, self.bus = store, backend, bus

    def submit(self, new: NewJob) -> tuple[Job, bool]:
        """Create and hand over a job, or return the one this request repeats (``created`` False).

        When the backend cannot take the job (Redis down), the row is removed again and
        ``Unavailable`` propagates: nothing is left half-written.
        """
        job, created = self.store.create(new)
        if created:
            self._hand_over(job)
        return job, created

    def submit_many(self, news: list[NewJob]) -> list[Job]:
        """Many jobs at once (a batch's tasks): one transaction, then each handed over."""
        created = self.store.create_many(news)
        for i, job in enumerate(created):
            try:
                self._hand_over(job)
            except Unavailable:
                for rest in created[i + 1 :]:
                    self.store.delete(rest.id)
                raise
        return created

    def _hand_over(self, job: Job) -> None:
        try:
            ref = self.backend.submit(job)
        except Unavailable:
            self.store.delete(job.id)
            raise
        if ref is not None:
            self.store.set_queue_ref(job.id, ref)

    def cancel(self, job_id: str, *, kind: str | None = None) -> Job:
        """Ask the job to stop (see ``JobStore.cancel``); its new state, published."""
        self.get(job_id, kind=kind)
        job = self.store.cancel(job_id)
        self.bus.publish(job.event())
        return job

    def get(self, job_id: str, *, kind: str | None = None) -> Job:
        # Job ids are hex: anything else names no job and never reaches the database (a NUL would
        # be an error on PostgreSQL and nothing on SQLite; both now answer 404).
        job = self.store.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None or (kind is not None and job.kind != kind):
            what = f"{kind} run" if kind else "job"
            raise NotFound(f"no {what} {job_id!r}", details={"id": job_id})
        return job

    def list(self, *, kind: str, subject: str | None = None, limit: int = 50) -> list[Job]:
        return self.store.list_jobs(kind=kind, subject=subject, limit=limit)

    async def events(
        self, job_id: str, *, after: int = 0, poll_s: float = 1.0
    ) -> AsyncIterator[ProgressEvent]:
        """Every progress event of the job after ``after`` (from the first when 0), then each new one live,
        until it is done or failed.

        Subscribes before reading the persisted events, so no change falls between the two; events
        repeat nothing and skip nothing (each carries the job's ``seq``; a gap in what the bus delivers
        is filled from the database). When the bus is silent the database is polled, so a lost message
        or a retried job on another machine still reaches the client.
        """
        sub = self.bus.subscribe(job_id)
        last = after

        async def persisted() -> list[ProgressEvent]:
            return await to_thread.run_sync(lambda: self.store.events(job_id, after=last))

        try:
            job = await to_thread.run_sync(lambda: self.get(job_id))
            if job.terminal and job.seq <= last:
                return  # the client has seen the end already
            while True:
                for event in await persisted():
                    last = event.seq
                    yield event
                    if event.terminal:
                        return
                live = await sub.get(poll_s)
                while live is not None and live.seq == last + 1:
                    last = live.seq
                    yield live
                    if live.terminal:
                        return
                    live = await sub.get(0)
                if live is None or live.seq > last:
                    # Silence (poll) or a gap (fill it): the database has everything in order.
                    fresh = await to_thread.run_sync(lambda: self.store.get(job_id))
                    if fresh is None or (fresh.terminal and fresh.seq <= last):
                        return
        finally:
            await sub.close()


class ServiceRouting:
    """A backend that leaves the work of leased services (``WorkKind.service``) alone: no worker takes it,
    the lease holder does (it lists its queued jobs); everything else goes to ``backend``."""

    def __init__(self, backend: Backend, service_kinds: Container[str]) -> None:
        self.backend, self.service_kinds = backend, service_kinds

    def submit(self, job: Job, front: bool = False) -> str | None:
        return None if job.kind in self.service_kinds else self.backend.submit(job, front)

    def ensure_queued(self, job: Job) -> None:
        if job.kind not in self.service_kinds:
            self.backend.ensure_queued(job)

    def start(self) -> None:
        self.backend.start()

    def stop(self) -> None:
        self.backend.stop()
