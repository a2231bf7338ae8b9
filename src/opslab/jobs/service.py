"""JobService: submit (idempotent), read, and stream the progress of jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.concurrency import run_in_threadpool

from opslab.errors import NotFound, Unavailable
from opslab.jobs.model import Job, NewJob, ProgressEvent
from opslab.jobs.ports import Backend, JobStore, ProgressBus


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
            try:
                self.backend.submit(job)
            except Unavailable:
                self.store.delete(job.id)
                raise
        return job, created

    def get(self, job_id: str, *, kind: str | None = None) -> Job:
        job = self.store.get(job_id)
        if job is None or (kind is not None and job.kind != kind):
            what = f"{kind} run" if kind else "job"
            raise NotFound(f"no {what} {job_id!r}", details={"id": job_id})
        return job

    def list(self, *, kind: str, subject: str | None = None, limit: int = 50) -> list[Job]:
        return self.store.list_jobs(kind=kind, subject=subject, limit=limit)

    async def events(
        self, job_id: str, *, after: int = 0, poll_s: float = 1.0
    ) -> AsyncIterator[ProgressEvent]:
        """The job's state now (if newer than ``after``), then each change until it is done or failed.

        Subscribes before reading the state, so no change falls between the two; events repeat nothing
        (each carries the job's ``seq``). When the bus is silent the database is polled, so a lost
        message or a retried job on another machine still reaches the client.
        """
        sub = self.bus.subscribe(job_id)
        try:
            job = await run_in_threadpool(self.get, job_id)
            last = after
            if job.seq > last:
                last = job.seq
                yield job.event()
            if job.terminal:
                return
            while True:
                event = await sub.get(poll_s)
                if event is None:
                    fresh = await run_in_threadpool(self.store.get, job_id)
                    if fresh is None:
                        return
                    event = fresh.event()
                if event.seq <= last:
                    continue
                last = event.seq
                yield event
                if event.status in ("done", "failed"):
                    return
        finally:
            await sub.close()
