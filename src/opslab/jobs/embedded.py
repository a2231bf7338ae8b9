"""Embedded backend: worker threads inside `opslab serve`; unfinished jobs are picked up on start."""

from __future__ import annotations

import logging
import queue
import threading

from opslab.jobs.model import Job
from opslab.jobs.runner import JobRunner, Reaper

log = logging.getLogger("opslab.jobs")
_STOP = "__stop__"


class EmbeddedBackend:
    def __init__(self, *, workers: int) -> None:
        self.workers = workers
        self._queue: queue.Queue[str] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.runner: JobRunner | None = None
        self.reaper: Reaper | None = None

    def bind(self, runner: JobRunner, reaper: Reaper) -> None:
        self.runner, self.reaper = runner, reaper

    def submit(self, job: Job) -> None:
        self._queue.put(job.id)

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

    def _work(self) -> None:
        assert self.runner is not None
        while True:
            job_id = self._queue.get()
            if job_id == _STOP:
                return
            try:
                self.runner.execute(job_id)
            except Exception:  # noqa: BLE001 - keep the worker alive; the reaper retries the job
                log.exception("job %s crashed its worker thread", job_id)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self.runner is not None:
            self.runner.stopping.set()
        for _ in range(self.workers):
            self._queue.put(_STOP)
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
