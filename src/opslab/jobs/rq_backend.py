"""Distributed backend: jobs go to RQ on Redis and run in `opslab worker` processes on any machine.

RQ carries only the job id; state, ownership, retries and progress live in the database (``JobStore``),
so a worker killed mid-job (even by SIGKILL) loses nothing: its heartbeat stops, a reaper in any other
worker or API process gives the job back to the queue (ahead of new work), and the attempt count bounds
the retries.

One message per job at a time: each hand-over gets its own RQ id, recorded on the job (``queue_ref``);
the reaper queues a waiting job again only when that message is gone (Redis restarted empty), so jobs
waiting with no worker never pile up duplicates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from types import FrameType
from typing import Any

from opslab.errors import Unavailable
from opslab.jobs.model import Job
from opslab.jobs.runner import JobRunner, Reaper

log = logging.getLogger("opslab.jobs")
QUEUE = "opslab"
TASK_KINDS = ("task",)  # short tasks (a lab run's trials) ride the tasks queue, which workers serve first

WORKER_WAIT_S = 15.0
RESTART_MIN_S, RESTART_MAX_S = 1.0, 30.0  # a worker that lost Redis or the database works again after these
# Set by the worker's main before it starts working; RQ calls ``perform`` by import path.
_RUNNER: JobRunner | None = None


def tasks_queue_name(job_queue: str) -> str:
    """The tasks queue beside a job queue: `opslab worker` listens on both, tasks first."""
    return f"{job_queue}-tasks"


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
        self.connection: Any = redis.Redis.from_url(
            redis_url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=15
        )
        self.queue = Queue(queue_name, connection=self.connection)
        self.tasks_queue = Queue(tasks_queue_name(queue_name), connection=self.connection)
        self.job_timeout_s = job_timeout_s
        self.reaper: Reaper | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def bind_reaper(self, reaper: Reaper) -> None:
        self.reaper = reaper
        reaper.ensure = self.ensure_queued

    def _queue_for(self, job: Job) -> Any:
        return self.tasks_queue if job.kind in TASK_KINDS else self.queue

    def submit(self, job: Job, front: bool = False) -> str | None:
        import redis

        ref = f"{job.id}-{secrets.token_hex(4)}"
        try:
            self._queue_for(job).enqueue_call(
                perform,
                args=(job.id,),
                timeout=int(self.job_timeout_s) + 30,
                result_ttl=60,
                failure_ttl=24 * 3600,
                description=f"opslab {job.kind} {job.id}",
                job_id=ref,
                at_front=front,
            )
        except redis.RedisError as exc:
            raise Unavailable(f"job queue (Redis) unavailable: {exc}", details={"backend": "rq"}) from exc
        return ref

    def ensure_queued(self, job: Job) -> None:
        """Queue a waiting job again only when its message is gone (see the module docstring)."""
        import redis
        from rq.job import Job as RqJob

        try:
            if job.queue_ref:
                found = RqJob.fetch_many([job.queue_ref], connection=self.connection)[0]
                if found is not None and found.get_status(refresh=False) in ("queued", "started"):
                    return
            ref = self.submit(job)
        except (redis.RedisError, Unavailable) as exc:
            log.warning("job %s: cannot queue it again yet: %s", job.id, exc)
            return
        if self.reaper is not None and ref is not None:
            self.reaper.store.set_queue_ref(job.id, ref)

    def depth(self) -> int:
        return int(self.queue.count) + int(self.tasks_queue.count)

    def tasks_ready(self) -> None:
        """Refuse, rather than wait forever, when no `opslab worker` serves the tasks queue (one starting
        gets ``WORKER_WAIT_S`` to register)."""
        import redis
        from rq import Worker

        deadline = time.monotonic() + WORKER_WAIT_S
        while True:
            try:
                if Worker.count(connection=self.connection, queue=self.tasks_queue):
                    return
            except redis.RedisError as exc:
                raise Unavailable(
                    f"task queue (Redis) unavailable: {exc}", details={"backend": "rq"}
                ) from exc
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"no `opslab worker` serves the queue {self.tasks_queue.name!r}: start one with the same "
                    "OPSLAB_REDIS_URL, OPSLAB_DATABASE_URL and OPSLAB_JOB_QUEUE",
                    details={"queue": self.tasks_queue.name},
                )
            time.sleep(0.2)

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


def reclaim_name(connection: Any, name: str) -> None:
    """Let a worker start again at once under its own name after it was killed (systemd's
    ``--name %H-%i`` with ``Restart=on-failure``): RQ keeps a killed worker's registration for its TTL and
    refuses the name meanwhile. The old registration is removed when it is this host's and its process is
    gone, or when it stopped heartbeating; a live worker of that name elsewhere keeps it (``Unavailable``)."""
    from rq import Worker

    old = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=connection)
    if old is None or old.death_date is not None:
        return
    gone = old.hostname == socket.gethostname() and not _alive(old.pid)
    silent = old.last_heartbeat is not None and time.time() - old.last_heartbeat.timestamp() > old.worker_ttl
    if old.pid == os.getpid() or gone or silent:
        old.register_death()  # type: ignore[no-untyped-call]
        return
    raise Unavailable(
        f"a live worker named {name!r} runs on {old.hostname} (pid {old.pid}); give this one another --name",
        details={"name": name},
    )


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_worker(
    backend: RqBackend, runner: JobRunner, reaper: Reaper, *, burst: bool = False, name: str | None = None
) -> None:
    """The body of `opslab worker`: an RQ SimpleWorker (no fork per job) plus a reaper thread. It listens
    on the tasks queue first, then on the jobs queue.

    A worker is for keeps: whatever it loses (Redis, the database, for any length of time) it backs off
    and works again, until a signal asks it to stop (or a burst has emptied the queues)."""
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
    with contextlib.suppress(Exception):  # the database may be away at start: the sweeper goes on later
        reaper.sweep(startup=True)
    sweeper.start()
    wait = RESTART_MIN_S
    try:
        while True:
            started = time.monotonic()
            worker: Worker | None = None
            try:
                if name:
                    reclaim_name(backend.connection, name)
                worker = Worker(
                    [backend.tasks_queue, backend.queue], connection=backend.connection, name=name
                )
                worker.work(burst=burst, logging_level="WARNING", with_scheduler=False)
            except StopRequested:
                return
            except Unavailable:
                raise  # another live worker has this name: a configuration error, said in one line
            except Exception as exc:  # noqa: BLE001 - Redis (or anything) lost: back off and work again
                log.warning("opslab worker: %s: %s", type(exc).__name__, exc)
            if burst or (worker is not None and worker.stop_asked):
                return
            if time.monotonic() - started > RESTART_MAX_S:
                wait = RESTART_MIN_S  # it had been working: a new outage starts the backoff afresh
            log.warning("opslab worker: stopped working (Redis lost?); working again in %.0f s", wait)
            if worker is not None:
                with contextlib.suppress(Exception):
                    worker.register_death()  # type: ignore[no-untyped-call]  # the name may register again
            try:
                time.sleep(wait)  # RQ's signal handlers are still in place: a stop asked now ends here
            except StopRequested:
                return
            wait = min(2 * wait, RESTART_MAX_S)
    finally:
        stop.set()
