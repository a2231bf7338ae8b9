"""Distributed backend: jobs go to RQ on Redis and run in `opslab worker` processes on any machine.

RQ carries only the job id; state, retries and progress live in the database (``JobStore``), so a
worker killed mid-job (even by SIGKILL) loses nothing: its heartbeat stops, a reaper in any other
worker or API process gives the job back to the queue, and the attempt count bounds the retries.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from types import FrameType
from typing import Any

from opslab.errors import Unavailable
from opslab.jobs.model import Job
from opslab.jobs.runner import JobRunner, Reaper
from opslab.jobs.tasks import tasks_queue_name

log = logging.getLogger("opslab.jobs")
QUEUE = "opslab"

RESTART_MIN_S, RESTART_MAX_S = 1.0, 30.0  # a worker RQ gave up on (Redis lost) works again after these
# Set by the worker's main before it starts working; RQ calls ``perform`` by import path.
_RUNNER: JobRunner | None = None


def perform(job_id: str) -> str:
    if _RUNNER is None:
        raise RuntimeError("opslab RQ jobs run inside `opslab worker`")
    job = _RUNNER.execute(job_id)
    return job.status if job else "skipped"


class RqBackend:
    def __init__(self, redis_url: str, *, job_timeout_s: float, queue_name: str = QUEUE) -> None:
        import redis
        from rq import Queue

        self.redis_url = redis_url
        self.connection: Any = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=10)
        self.queue = Queue(queue_name, connection=self.connection)
        # Short tasks (lab trials) beside the jobs; a worker takes them first: a job may be waiting on them.
        self.tasks_queue = Queue(tasks_queue_name(queue_name), connection=self.connection)
        self.job_timeout_s = job_timeout_s
        self.reaper: Reaper | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def bind_reaper(self, reaper: Reaper) -> None:
        self.reaper = reaper

    def submit(self, job: Job) -> None:
        import redis

        try:
            self.queue.enqueue(
                perform,
                job.id,
                job_timeout=int(self.job_timeout_s) + 30,
                result_ttl=60,
                failure_ttl=24 * 3600,
                description=f"opslab {job.kind} {job.id}",
            )
        except redis.RedisError as exc:
            raise Unavailable(f"job queue (Redis) unavailable: {exc}", details={"backend": "rq"}) from exc

    def start(self) -> None:
        """In an API process: only the reaper runs here; the work happens in `opslab worker`."""
        if self.reaper is None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.reaper.run_forever, args=(self._stop,), name="opslab-reaper", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)


def run_worker(
    backend: RqBackend, runner: JobRunner, reaper: Reaper, *, burst: bool = False, name: str | None = None
) -> None:
    """The body of `opslab worker`: an RQ SimpleWorker (no fork per job) plus a reaper thread. It listens
    on the tasks queue first, then on the jobs queue.

    RQ retries a lost Redis only while it waits for a job; lost anywhere else (its suspension check, its
    maintenance, the heartbeat after a job) its worker logs it and quits. A worker is for keeps: it works
    again, backing off, until a signal asks it to stop (or a burst has emptied the queues)."""
    import redis
    from rq import SimpleWorker
    from rq.exceptions import StopRequested

    class Worker(SimpleWorker):
        stop_asked = False

        def request_stop(self, signum: int, frame: FrameType | None) -> None:
            self.stop_asked = True  # RQ's own handler for SIGINT/SIGTERM; it raises when idle
            super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    global _RUNNER
    _RUNNER = runner
    stop = threading.Event()
    sweeper = threading.Thread(target=reaper.run_forever, args=(stop,), name="opslab-reaper", daemon=True)
    reaper.sweep(startup=True)
    sweeper.start()
    wait = RESTART_MIN_S
    try:
        while True:
            worker = Worker([backend.tasks_queue, backend.queue], connection=backend.connection, name=name)
            started = time.monotonic()
            try:
                worker.work(burst=burst, logging_level="WARNING", with_scheduler=False)
            except redis.RedisError as exc:  # lost again while RQ tore its worker down
                log.warning("opslab worker: Redis failed: %s", exc)
            if burst or worker.stop_asked:
                return
            if time.monotonic() - started > RESTART_MAX_S:
                wait = RESTART_MIN_S  # it had been working: a new outage starts the backoff afresh
            log.warning("opslab worker: stopped working (Redis lost?); working again in %.0f s", wait)
            with contextlib.suppress(redis.RedisError):
                worker.register_death()  # type: ignore[no-untyped-call]  # the same name may register again
            try:
                time.sleep(wait)  # RQ's signal handlers are still in place: a stop asked now ends here
            except StopRequested:
                return
            wait = min(2 * wait, RESTART_MAX_S)
    finally:
        stop.set()
