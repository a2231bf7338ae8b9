"""Short tasks on RQ beside the jobs: many small calls (a lab run's trials) fanned out to `opslab worker`
processes on the tasks queue, each under a lease.

A task is a call by import path (``module:function``, only within ``opslab``) with string arguments. The
worker runs it inside ``perform_task``, which

- records the task as started (``<batch>:started``) and holds a lease key refreshed (every half second,
  at most a quarter of ``lease_s``) while the call runs; a worker that dies, kill -9 included, stops
  refreshing and the key expires;
- pushes the call's result (or its exception) onto the batch's done list, then keeps the lease a little
  longer, so a submitter never sees a finished task without a lease before it sees it done;
- when the submitter stops the batch (``TaskBatch.stop``), kills the programs the call is running (so the
  call ends at once), and a task taken after that does not run.

The submitter (``TaskBatch``) blocks on the done list (no polling per task) and asks ``lost()`` now and
then: started, not done, no lease. What to do with a lost task (run it again, once) is its own call.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opslab import proc
from opslab.errors import InvalidInput, Unavailable
from opslab.jobs.runner import owner_id

KEY_TTL_S = 24 * 3600  # a batch's bookkeeping outlives any run, then goes
WORKER_WAIT_S = 15.0
STOP_POLL_S = 0.5
FAILED_CHECK_S = 5.0


def tasks_queue_name(job_queue: str) -> str:
    """The tasks queue beside a job queue: `opslab worker` listens on both, tasks first."""
    return f"{job_queue}-tasks"


@dataclass(frozen=True)
class TaskEnd:
    """A finished task: its ``result`` (the call's return value as a string), or the ``error`` it raised."""

    task_id: str
    result: str | None = None
    error: str | None = None


def _keys(batch: str) -> tuple[str, str, str, str]:
    base = f"opslab:tasks:{batch}"
    return f"{base}:done", f"{base}:started", f"{base}:lease:", f"{base}:stop"


def perform_task(call: str, batch: str, task_id: str, lease_s: float, *args: str) -> str:
    """What an RQ worker runs for a task (see the module docstring)."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("tasks run inside `opslab worker`")
    conn: Any = job.connection
    done_key, started_key, lease_prefix, stop_key = _keys(batch)
    lease_key, lease_ms = lease_prefix + task_id, max(1, int(lease_s * 1000))
    owner = owner_id("task")
    with conn.pipeline(transaction=False) as pipe:  # one round trip: a trial's bookkeeping adds up
        pipe.exists(stop_key)
        pipe.set(lease_key, owner, px=lease_ms)
        pipe.hset(started_key, task_id, owner)
        pipe.expire(started_key, KEY_TTL_S)
        stopped_before = pipe.execute()[0]
    if stopped_before:  # the submitter gave up on the batch as this task was being taken
        conn.rpush(done_key, json.dumps({"task_id": task_id, "error": "stopped"}))
        return "stopped"
    stop = threading.Event()

    def beat() -> None:
        killed = False
        while not stop.wait(min(lease_s / 4, STOP_POLL_S)):
            # A missed beat is retried: the lease outlasts three of them.
            with contextlib.suppress(Exception), conn.pipeline(transaction=False) as pipe:
                pipe.set(lease_key, owner, px=lease_ms)
                pipe.exists(stop_key)
                if pipe.execute()[1] and not killed:
                    killed = True
                    proc.kill_running()  # the submitter stopped: this task's programs end now

    heart = threading.Thread(target=beat, name=f"lease:{task_id}", daemon=True)
    heart.start()
    end: dict[str, str] = {"task_id": task_id}
    try:
        result = str(_function(call)(*args))
        end["result"] = result
        return result
    except BaseException as exc:
        end["error"] = f"{type(exc).__name__}: {exc}"[:1000]
        raise
    finally:
        stop.set()
        heart.join(1)
        with conn.pipeline(transaction=False) as pipe:
            pipe.rpush(done_key, json.dumps(end))
            pipe.expire(done_key, KEY_TTL_S)
            pipe.set(lease_key, "finished", px=lease_ms)  # see the module docstring
            pipe.execute()


def _function(call: str) -> Callable[..., object]:
    module, _, name = call.partition(":")
    if not (module == "opslab" or module.startswith("opslab.")) or not name:
        raise InvalidInput.for_field("call", f"not an opslab function: {call!r}")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise InvalidInput.for_field("call", f"not callable: {call!r}")
    return fn  # type: ignore[no-any-return]


class RqTasks:
    """The tasks queue of a job queue on Redis: ``RqTasks(url, queue=…, lease_s=…).batch()``."""

    def __init__(self, redis_url: str, *, queue: str, lease_s: float) -> None:
        import redis
        from rq import Queue

        self.connection: Any = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=30)
        self.queue = Queue(queue, connection=self.connection)
        self.lease_s = lease_s

    def batch(self) -> TaskBatch:
        return TaskBatch(self)

    def ready(self) -> None:
        """Refuse, rather than wait forever, when no `opslab worker` serves the queue (one starting
        gets ``WORKER_WAIT_S`` to register)."""
        import redis
        from rq import Worker

        deadline = time.monotonic() + WORKER_WAIT_S
        while True:
            try:
                if Worker.count(connection=self.connection, queue=self.queue):
                    return
            except redis.RedisError as exc:
                raise Unavailable(
                    f"task queue (Redis) unavailable: {exc}", details={"backend": "rq"}
                ) from exc
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"no `opslab worker` serves the queue {self.queue.name!r}: start one with the same "
                    "OPSLAB_REDIS_URL and OPSLAB_JOB_QUEUE",
                    details={"queue": self.queue.name},
                )
            time.sleep(0.2)


class TaskBatch:
    """Tasks submitted together and awaited together (one lab run's trials)."""

    def __init__(self, tasks: RqTasks) -> None:
        self.tasks, self.conn, self.lease_s = tasks, tasks.connection, tasks.lease_s
        self.id = secrets.token_hex(8)
        self.done_key, self.started_key, self.lease_prefix, self.stop_key = _keys(self.id)
        self._rq_ids: dict[str, str] = {}
        self._failed_checked = time.monotonic()

    def submit(self, items: Sequence[tuple[str, Sequence[str]]], call: str, *, timeout_s: float) -> None:
        """Enqueue one task per ``(task_id, args)``: ``call(*args)`` on a worker."""
        import redis
        from rq import Queue

        data = [
            Queue.prepare_data(
                perform_task,
                args=(call, self.id, task_id, self.lease_s, *args),
                timeout=int(timeout_s) + 60,
                result_ttl=0,
                failure_ttl=KEY_TTL_S,
                description=f"opslab task {task_id}",
            )
            for task_id, args in items
        ]
        try:
            jobs = self.tasks.queue.enqueue_many(data)
        except redis.RedisError as exc:
            raise Unavailable(f"task queue (Redis) unavailable: {exc}", details={"backend": "rq"}) from exc
        for (task_id, _), job in zip(items, jobs, strict=True):
            self._rq_ids[task_id] = job.id

    def wait(self, timeout_s: float) -> list[TaskEnd]:
        """The tasks finished since the last call: blocks up to ``timeout_s`` for the first."""
        first = self.conn.blpop([self.done_key], timeout=max(timeout_s, 0.01))
        if first is None:
            return []
        raw = [first[1]]
        with self.conn.pipeline() as pipe:
            pipe.lrange(self.done_key, 0, -1)
            pipe.delete(self.done_key)
            rest = pipe.execute()[0]
        raw.extend(rest)
        return [TaskEnd(**json.loads(item)) for item in raw]

    def lost(self, candidates: Sequence[str]) -> list[str]:
        """Of ``candidates`` (tasks not seen done), those started whose lease has expired, and those RQ
        failed before they started."""
        if not candidates:
            return []
        started = self.conn.hmget(self.started_key, list(candidates))
        running = [t for t, owner in zip(candidates, started, strict=True) if owner is not None]
        gone = self._failed_unstarted(
            [t for t, owner in zip(candidates, started, strict=True) if owner is None]
        )
        if running:
            leases = self.conn.mget([self.lease_prefix + t for t in running])
            gone += [t for t, lease in zip(running, leases, strict=True) if lease is None]
        if gone:  # a task that finished meanwhile pushed its end before its lease could lapse
            ended = {json.loads(i)["task_id"] for i in self.conn.lrange(self.done_key, 0, -1)}
            gone = [t for t in gone if t not in ended]
        return gone

    def _failed_unstarted(self, unstarted: list[str]) -> list[str]:
        """Tasks RQ failed before they could start (a worker that cannot import them): checked every
        ``FAILED_CHECK_S``, one registry read for all of them."""
        now = time.monotonic()
        if not unstarted or now - self._failed_checked < FAILED_CHECK_S:
            return []
        self._failed_checked = now
        failed = set(self.tasks.queue.failed_job_registry.get_job_ids())
        return [t for t in unstarted if self._rq_ids.get(t) in failed]

    def started(self, candidates: Sequence[str]) -> list[str]:
        """Of ``candidates``, those a worker has taken."""
        if not candidates:
            return []
        owners = self.conn.hmget(self.started_key, list(candidates))
        return [t for t, owner in zip(candidates, owners, strict=True) if owner is not None]

    def stop(self) -> None:
        """Tell the workers to kill the programs of this batch's running tasks and start no more."""
        self.conn.set(self.stop_key, "1", ex=KEY_TTL_S)

    def close(self, unfinished: Sequence[str] = ()) -> None:
        """Cancel those of ``unfinished`` that have not started; forget the batch's bookkeeping."""
        from rq.job import Job

        try:
            ids = [self._rq_ids[t] for t in unfinished if t in self._rq_ids]
            for job in Job.fetch_many(ids, connection=self.conn):
                if job is not None and job.get_status(refresh=False) == "queued":
                    job.cancel()
            self.conn.delete(self.done_key, self.started_key)  # the stop key stays: late takers see it
        except Exception:  # noqa: BLE001 - best effort: leftovers expire with KEY_TTL_S
            pass
