"""Short tasks beside the jobs: many small calls (a lab run's trials) fanned out to `opslab worker`
processes, each a job of kind ``task`` in one batch (``group_id``), awaited together by the process that
submitted them.

A task is a call by import path (``module:function``, only within ``opslab``) with string arguments, called
as ``function(*args, attempt=n, cancelled=event)`` (``event`` is set once the task is cancelled, before its
programs are killed). Being jobs, tasks get everything jobs have — ownership by the database
(RQ carries only ids), heartbeats, a lost task retried ahead of new work (``max_attempts`` 2: once), a task
lost on every attempt ended as ``crashed`` — with no lease protocol of their own. Stopping a batch cancels
its tasks: a worker running one kills that call's programs at its next heartbeat, and a task not yet
taken never starts.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from opslab import proc
from opslab.errors import InvalidInput
from opslab.jobs.model import Job
from opslab.jobs.service import JobService
from opslab.jobs.work import Payload, Work, WorkContext, WorkKind

KIND = "task"
TASK_ATTEMPTS = 2  # a task whose worker was lost runs once more
POLL_S = 0.05
REREAD_S = 60.0


class TaskPayload(Payload):
    call: str
    task_id: str
    args: list[str]


class TaskOutcome(Payload):
    value: str


def _function(call: str) -> Callable[..., object]:
    module, _, name = call.partition(":")
    if not (module == "opslab" or module.startswith("opslab.")) or not name:
        raise InvalidInput.for_field("call", f"not an opslab function: {call!r}")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise InvalidInput.for_field("call", f"not callable: {call!r}")
    return fn  # type: ignore[no-any-return]


def _perform(task: TaskPayload, ctx: WorkContext) -> TaskOutcome:
    """What a worker runs for a task: the call, its programs killed the moment the task is cancelled."""
    fn = _function(task.call)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if ctx.cancelled.wait(0.2) or ctx.stopping.is_set():
                # The submitter stopped the batch: this call's programs end now, and again until the call
                # returns (a program it was starting as the cancel came is not spared).
                proc.kill_running()
                done.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True, name=f"task-cancel:{task.task_id}")
    watcher.start()
    try:
        return TaskOutcome(value=str(fn(*task.args, attempt=ctx.attempt, cancelled=ctx.cancelled)))
    finally:
        done.set()


TASK: WorkKind[TaskPayload, TaskOutcome] = WorkKind(
    KIND,
    TaskPayload,
    TaskOutcome,
    done_step="Task done",
    failed_step="Task failed",
    max_attempts=TASK_ATTEMPTS,
)


def task_work(_deps: object) -> Work[TaskPayload, TaskOutcome]:
    return TASK.bind(_perform)


@dataclass(frozen=True)
class TaskEnd:
    """A finished task: its ``result`` (the call's return value as a string), or why it has none."""

    task_id: str
    attempts: int
    result: str | None = None
    error: str | None = None
    lost: bool = False  # its worker was lost on every attempt


class TaskBatch:
    """Tasks submitted together and awaited together (one lab run's trials)."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.id = uuid.uuid4().hex
        self._seen: set[str] = set()
        self._since: datetime | None = None

    def submit(self, items: Sequence[tuple[str, Sequence[str]]], call: str) -> None:
        """Queue one task per ``(task_id, args)``: ``call(*args, attempt=n)`` on a worker."""
        news = [
            TASK.new(
                TaskPayload(call=call, task_id=task_id, args=list(args)),
                subject=task_id,
                group_id=self.id,
                max_attempts=TASK_ATTEMPTS,
            )
            for task_id, args in items
        ]
        self.jobs.submit_many(news)

    def wait(self, timeout_s: float) -> list[TaskEnd]:
        """The tasks ended since the last call: waits up to ``timeout_s`` for the first."""
        deadline = time.monotonic() + timeout_s
        while True:
            ended = [
                j
                for j in self.jobs.store.ended_in_group(self.id, since=self._since)
                if j.id not in self._seen
            ]
            if ended or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        for job in ended:
            self._seen.add(job.id)
            # Read again what ended shortly before the newest end seen: workers' clocks and commits
            # do not arrive in the order of their timestamps.
            if job.finished_at is not None:
                since = job.finished_at - timedelta(seconds=REREAD_S)
                self._since = since if self._since is None else max(self._since, since)
        return [_end(j) for j in ended]

    def stop(self) -> int:
        """Cancel every unfinished task of the batch (running ones have their programs killed)."""
        return self.jobs.store.cancel_group(self.id)


def _end(job: Job) -> TaskEnd:
    task_id = str(job.subject)
    outcome = TASK.result_of(job) if job.status == "succeeded" else None
    if outcome is not None:
        return TaskEnd(task_id, job.attempts, result=outcome.value)
    message = str((job.error or {}).get("message") or job.message)
    return TaskEnd(task_id, job.attempts, error=f"{job.status}: {message}", lost=job.status == "crashed")


class TaskQueue:
    """Opens one ``TaskBatch`` per run; ``ready`` refuses (``Unavailable``) when no worker serves tasks."""

    def __init__(self, jobs: JobService, *, ready: Callable[[], None]) -> None:
        self.jobs, self._ready = jobs, ready

    def batch(self) -> TaskBatch:
        return TaskBatch(self.jobs)

    def ready(self) -> None:
        self._ready()
