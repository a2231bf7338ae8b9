"""Embedded backend: worker threads inside `opslab serve`; unfinished jobs are picked up on start.

The queue is in memory (job ids only; the database holds the state): a retry of lost work goes to its
front, a job id is never in it twice, and after a restart the reaper's start-up sweep queues every job
the database still has queued.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from opslab.jobs.model import Job
from opslab.jobs.runner import JobRunner, Reaper

log = logging.getLogger("opslab.jobs")


class EmbeddedBackend:
    def __init__(self, *, workers: int) -> None:
        self.workers = workers
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.runner: JobRunner | None = None
        self.reaper: Reaper | None = None

    def bind(self, runner: JobRunner, reaper: Reaper) -> None:
        self.runner, self.reaper = runner, reaper
        reaper.ensure = self.ensure_queued

    def submit(self, job: Job, front: bool = False) -> str | None:
        with self._ready:
            if job.id not in self._queued:
                self._queued.add(job.id)
                (self._queue.appendleft if front else self._queue.append)(job.id)
                self._ready.notify()
        return None

    def ensure_queued(self, job: Job) -> None:
        self.submit(job)  # a job id already waiting is not queued twice

    def depth(self) -> int:
        with self._ready:
            return len(self._queue)

    def start(self) -> None:
        if self.runner is None or self.reaper is None:
            raise RuntimeError("bind a runner and a reaper before starting")
        self._stop.clear()
        recovered = self.reaper.sweep(startup=True)
        if recovered:
            log.info("picked up %d unfinished job(s)", recovered)
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"opslab-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        reaper = threading.Thread(
            target=self.reaper.run_forever, args=(self._stop,), name="opslab-reaper", daemon=True
        )
        reaper.start()
        self._threads.append(reaper)

    def _next(self) -> str | None:
        with self._ready:
            while not self._queue and not self._stop.is_set():
                self._ready.wait()
            if self._stop.is_set():
                return None
            job_id = self._queue.popleft()
            self._queued.discard(job_id)
            return job_id

    def _work(self) -> None:
        assert self.runner is not None
        while (job_id := self._next()) is not None:
            try:
                self.runner.execute(job_id)
            except Exception:  # noqa: BLE001 - keep the worker alive; the reaper retries the job
                log.exception("job %s crashed its worker thread", job_id)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self.runner is not None:
            self.runner.stopping.set()
        with self._ready:
            self._ready.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
