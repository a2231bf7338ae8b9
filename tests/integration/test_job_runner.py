"""JobRunner, Reaper and the event history on a real store (SQLite and PostgreSQL): claims, retries,
lease expiry, a job finished twice, cancelling, crashing, every progress event kept and replayed."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, update

from opslab.errors import Conflict, InvalidInput
from opslab.jobs import (
    AnyWork,
    Cancelled,
    Job,
    JobRunner,
    JobService,
    LocalBus,
    NewJob,
    Payload,
    ProgressEvent,
    Reaper,
    WorkContext,
    WorkKind,
)
from opslab.store.jobs import SqlJobStore
from opslab.store.tables import jobs as jobs_table


class Resubmitted:
    """The backend seam: records what the runner and reaper hand back for execution (and how)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.front: list[str] = []

    def __call__(self, job: Job, front: bool = False) -> None:
        self.ids.append(job.id)
        if front:
            self.front.append(job.id)

    def submit(self, job: Job, front: bool = False) -> str | None:
        self(job, front)
        return None

    def ensure_queued(self, job: Job) -> None:
        self(job)

    def start(self) -> None: ...
    def stop(self) -> None: ...


class Echo(Payload):
    x: int | None = None


def demo(
    fn: Callable[[Echo, WorkContext], dict[str, Any]],
    *,
    done_step: str = "Complete",
    failed_step: str = "Failed",
) -> AnyWork:
    return WorkKind("demo", Echo, dict[str, Any], done_step=done_step, failed_step=failed_step).bind(fn)


def three_steps(payload: Echo, ctx: WorkContext) -> dict[str, Any]:
    for i, step in enumerate(("one", "two", "three"), start=1):
        ctx.report(step, 30 * i, f"{step} of three")
    return {"echo": payload.x}


class FlakyOnce:
    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def __call__(self, payload: Echo, ctx: WorkContext) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            raise self.error
        return {"calls": self.calls}


@pytest.fixture
def store(engine: Engine) -> SqlJobStore:
    return SqlJobStore(engine)


def runner_for(
    store: SqlJobStore, works: dict[str, AnyWork], resubmit: Resubmitted, owner: str = "test:1"
) -> JobRunner:
    return JobRunner(store=store, bus=LocalBus(), works=works, owner=owner, lease_s=0.2, resubmit=resubmit)


def submit(store: SqlJobStore, kind: str = "demo", max_attempts: int = 3, **payload: Any) -> Job:
    job, created = store.create(NewJob(kind=kind, payload=payload, max_attempts=max_attempts))
    assert created
    return job


def test_a_job_runs_to_done_and_every_progress_event_is_kept_in_order(store: SqlJobStore) -> None:
    job = submit(store, x=7)
    done = runner_for(store, {"demo": demo(three_steps, done_step="Finished")}, Resubmitted())
    finished = done.execute(job.id)
    assert finished is not None and finished.status == "succeeded" and finished.result == {"echo": 7}
    events = store.events(job.id)
    assert [e.seq for e in events] == list(range(1, finished.seq + 1))
    assert [e.step for e in events] == ["Queued", "Queued", "one", "two", "three", "Finished"]
    assert [e.status for e in events][:2] == ["queued", "running"] and events[-1].status == "succeeded"
    assert [e.step for e in store.events(job.id, after=4)] == ["three", "Finished"]


def test_a_finished_job_is_not_run_again(store: SqlJobStore) -> None:
    job = submit(store)
    calls: list[str] = []

    def count(payload: Echo, ctx: WorkContext) -> dict[str, Any]:
        calls.append("x")
        return {}

    runner = runner_for(store, {"demo": demo(count)}, Resubmitted())
    assert runner.execute(job.id) is not None
    assert runner.execute(job.id) is None  # already done: nothing claimed, nothing run
    assert calls == ["x"]


def test_a_failed_attempt_is_retried_then_succeeds(store: SqlJobStore) -> None:
    job = submit(store)
    flaky = FlakyOnce(RuntimeError("connection reset"))
    resubmit = Resubmitted()
    runner = runner_for(store, {"demo": demo(flaky)}, resubmit)
    queued = runner.execute(job.id)
    assert queued is not None and queued.status == "queued" and queued.attempts == 1
    assert queued.error is not None and "connection reset" in queued.error["message"]
    assert resubmit.ids == [job.id]
    done = runner.execute(job.id)
    assert (
        done is not None and done.status == "succeeded" and done.attempts == 2 and done.result == {"calls": 2}
    )


def test_an_error_no_retry_can_fix_fails_at_once(store: SqlJobStore) -> None:
    job = submit(store)
    resubmit = Resubmitted()
    kind = demo(FlakyOnce(InvalidInput("bad payload")), failed_step="Gave up")
    runner = runner_for(store, {"demo": kind}, resubmit)
    failed = runner.execute(job.id)
    assert failed is not None and failed.status == "failed" and failed.step == "Gave up"
    assert failed.error is not None and failed.error["code"] == "invalid_input"
    assert resubmit.ids == []


def test_attempts_run_out(store: SqlJobStore) -> None:
    job = submit(store, max_attempts=1)
    runner = runner_for(store, {"demo": demo(FlakyOnce(RuntimeError("boom")))}, Resubmitted())
    failed = runner.execute(job.id)
    assert failed is not None and failed.status == "failed" and failed.attempts == 1


def test_a_job_of_an_unknown_kind_fails_naming_it(store: SqlJobStore) -> None:
    job = submit(store, kind="nobody-handles-this")
    failed = runner_for(store, {}, Resubmitted()).execute(job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and failed.error["code"] == "unknown_kind"


def _backdate_heartbeat(engine: Engine, job_id: str, seconds: float) -> None:
    from datetime import UTC, datetime, timedelta

    with engine.begin() as conn:
        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == job_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def test_on_start_the_reaper_requeues_a_job_whose_owner_died_without_waiting_for_its_lease(
    store: SqlJobStore,
) -> None:
    job = submit(store)
    alive = submit(store)
    dead = f"{socket.gethostname()}:{_dead_pid()}:worker"
    assert store.claim(job.id, dead) is not None
    assert store.claim(alive.id, f"{socket.gethostname()}:{os.getpid()}:other") is not None
    resubmit = Resubmitted()
    reaper = Reaper(store=store, bus=LocalBus(), lease_s=60, resubmit=resubmit)
    assert reaper.sweep() == 0  # heartbeats are fresh: nothing is due yet
    assert reaper.sweep(startup=True) == 1  # the heartbeat is fresh, but its process is gone
    again = store.get(job.id)
    assert again is not None and again.status == "queued" and again.owner is None
    assert again.error is not None and again.error["code"] == "worker_lost"
    assert resubmit.ids == [job.id] and resubmit.front == [job.id]  # lost work goes ahead of new work


def test_the_reaper_leaves_a_live_owner_alone_until_its_lease_expires(
    store: SqlJobStore, engine: Engine
) -> None:
    job = submit(store)
    live = f"remote-host:{os.getpid()}:worker"  # another machine: only its heartbeat tells
    assert store.claim(job.id, live) is not None
    resubmit = Resubmitted()
    reaper = Reaper(store=store, bus=LocalBus(), lease_s=30, resubmit=resubmit)
    assert reaper.sweep() == 0
    _backdate_heartbeat(engine, job.id, 31)
    assert reaper.sweep() == 1
    assert resubmit.ids == [job.id]


def test_a_job_whose_worker_is_lost_on_its_last_attempt_is_crashed(
    store: SqlJobStore, engine: Engine
) -> None:
    job = submit(store, max_attempts=1)
    assert store.claim(job.id, "remote-host:1:worker") is not None
    _backdate_heartbeat(engine, job.id, 120)
    resubmit = Resubmitted()
    assert Reaper(store=store, bus=LocalBus(), lease_s=30, resubmit=resubmit).sweep() == 1
    crashed = store.get(job.id)
    assert crashed is not None and crashed.status == "crashed" and resubmit.ids == []
    assert crashed.error is not None and crashed.error["code"] == "worker_lost"


def test_a_job_finished_twice_keeps_the_first_finish(store: SqlJobStore, engine: Engine) -> None:
    """A slow owner whose lease expired finishes after another worker took the job over: its late
    finish changes nothing."""
    job = submit(store)
    slow = "remote-host:1:slow"
    assert store.claim(job.id, slow) is not None
    _backdate_heartbeat(engine, job.id, 120)
    Reaper(store=store, bus=LocalBus(), lease_s=30, resubmit=Resubmitted()).sweep()
    fast = runner_for(store, {"demo": demo(three_steps)}, Resubmitted(), owner="here:2:fast")
    done = fast.execute(job.id)
    assert done is not None and done.status == "succeeded"
    late = store.finish(job.id, slow, result={"from": "slow"}, step="Complete", message="late")
    assert late is None
    final = store.get(job.id)
    assert final is not None and final.result == {"echo": None} and final.seq == done.seq


def test_a_late_reader_replays_every_event_then_stops(store: SqlJobStore) -> None:
    job = submit(store)
    runner_for(store, {"demo": demo(three_steps)}, Resubmitted()).execute(job.id)
    service = JobService(store=store, backend=Resubmitted(), bus=LocalBus())

    async def read(after: int) -> list[ProgressEvent]:
        return [e async for e in service.events(job.id, after=after, poll_s=0.05)]

    everything = asyncio.run(read(0))
    assert [e.step for e in everything] == ["Queued", "Queued", "one", "two", "three", "Complete"]
    assert [e.seq for e in asyncio.run(read(3))] == [4, 5, 6]
    assert asyncio.run(read(6)) == []  # nothing after the end: the stream closes at once


def test_a_live_reader_sees_every_event_once(store: SqlJobStore) -> None:
    job = submit(store)
    bus = LocalBus()
    service = JobService(store=store, backend=Resubmitted(), bus=bus)
    runner = JobRunner(
        store=store,
        bus=bus,
        works={"demo": demo(three_steps)},
        owner="here:3:live",
        lease_s=5,
        resubmit=Resubmitted(),
    )

    async def follow() -> list[ProgressEvent]:
        seen: list[ProgressEvent] = []
        loop = asyncio.get_running_loop()
        async for event in service.events(job.id, poll_s=0.05):
            seen.append(event)
            if len(seen) == 1:
                loop.run_in_executor(None, runner.execute, job.id)
        return seen

    seen = asyncio.run(asyncio.wait_for(follow(), 30))
    assert [e.seq for e in seen] == list(range(1, 7))
    assert seen[-1].status == "succeeded"


def _dead_pid() -> int:
    """A pid that certainly names no process: a child that has exited and been reaped."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.01)
    return pid


def test_a_queued_job_cancelled_never_runs(store: SqlJobStore) -> None:
    job = submit(store)
    cancelled = store.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    calls: list[int] = []

    def count(payload: Echo, ctx: WorkContext) -> dict[str, Any]:
        calls.append(1)
        return {}

    assert runner_for(store, {"demo": demo(count)}, Resubmitted()).execute(job.id) is None
    assert calls == [] and store.cancel(job.id).status == "cancelled"  # cancelling again changes nothing


def test_a_running_job_sees_the_cancel_at_its_next_heartbeat_and_keeps_what_it_returns(
    store: SqlJobStore,
) -> None:
    job = submit(store)
    started, stopped = threading.Event(), threading.Event()

    def patient(payload: Echo, ctx: WorkContext) -> dict[str, Any]:
        started.set()
        assert ctx.cancelled.wait(30), "the cancel never reached the work"
        stopped.set()
        return {"kept": "what finished"}

    runner = runner_for(store, {"demo": demo(patient)}, Resubmitted())
    out: list[Job | None] = []
    worker = threading.Thread(target=lambda: out.append(runner.execute(job.id)))
    worker.start()
    assert started.wait(30)
    asked = store.cancel(job.id)
    assert asked.status == "cancelling"
    worker.join(30)
    assert stopped.is_set() and out and out[0] is not None
    final = out[0]
    assert final.status == "cancelled" and final.result == {"kept": "what finished"}
    assert [e.status for e in store.events(job.id)][-2:] == ["cancelling", "cancelled"]


def test_work_that_raises_cancelled_ends_cancelled_with_its_partial_result(store: SqlJobStore) -> None:
    job = submit(store)

    def gives_up(payload: Echo, ctx: WorkContext) -> dict[str, Any]:
        raise Cancelled("stopped by its own rule", result={"done": 2})

    ended = runner_for(store, {"demo": demo(gives_up)}, Resubmitted()).execute(job.id)
    assert ended is not None and ended.status == "cancelled" and ended.result == {"done": 2}
    assert ended.message == "stopped by its own rule"


def test_a_finished_job_cannot_be_cancelled(store: SqlJobStore) -> None:
    job = submit(store)
    runner_for(store, {"demo": demo(three_steps)}, Resubmitted()).execute(job.id)
    with pytest.raises(Conflict):
        store.cancel(job.id)


def test_a_cancelling_job_whose_worker_died_is_cancelled_not_retried(
    store: SqlJobStore, engine: Engine
) -> None:
    job = submit(store)
    assert store.claim(job.id, "remote-host:1:worker") is not None
    assert store.cancel(job.id).status == "cancelling"
    _backdate_heartbeat(engine, job.id, 120)
    resubmit = Resubmitted()
    assert Reaper(store=store, bus=LocalBus(), lease_s=30, resubmit=resubmit).sweep() == 1
    final = store.get(job.id)
    assert final is not None and final.status == "cancelled" and resubmit.ids == []


def test_a_cancelled_dedupe_key_lets_a_new_job_start(store: SqlJobStore) -> None:
    first, created = store.create(NewJob(kind="demo", dedupe_key="same"))
    assert created
    store.cancel(first.id)
    second, created = store.create(NewJob(kind="demo", dedupe_key="same"))
    assert created and second.id != first.id


def test_a_waiting_job_whose_message_lives_is_not_queued_twice(store: SqlJobStore, engine: Engine) -> None:
    """The reaper asks the backend to queue a long-waiting job again only through ``ensure_queued``,
    whose job it is to tell whether the message is still there."""
    job = submit(store)
    with engine.begin() as conn:
        from datetime import UTC, datetime, timedelta

        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == job.id)
            .values(updated_at=datetime.now(UTC) - timedelta(seconds=120))
        )
    resubmit = Resubmitted()
    ensured: list[str] = []
    reaper = Reaper(store=store, bus=LocalBus(), lease_s=30, resubmit=resubmit)
    reaper.ensure = lambda j: ensured.append(j.id)
    assert reaper.sweep() == 1
    assert ensured == [job.id] and resubmit.ids == []  # never a blind second message


def test_a_batch_of_jobs_is_created_at_once_and_its_ends_are_listed(store: SqlJobStore) -> None:
    news = [NewJob(kind="demo", payload={"x": i}, group_id="g1", subject=f"t{i}") for i in range(5)]
    created = store.create_many(news)
    assert [j.group_id for j in created] == ["g1"] * 5
    runner = runner_for(store, {"demo": demo(three_steps)}, Resubmitted())
    for job in created[:3]:
        runner.execute(job.id)
    store.cancel_group("g1")
    ended = store.ended_in_group("g1")
    assert sorted(j.subject or "" for j in ended) == [f"t{i}" for i in range(5)]
    assert sorted(j.status for j in ended) == [
        "cancelled",
        "cancelled",
        "succeeded",
        "succeeded",
        "succeeded",
    ]
    with pytest.raises(ValueError):
        store.create_many([NewJob(kind="demo", dedupe_key="k")])
