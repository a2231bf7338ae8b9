"""Trials on a task queue (``--executor rq``): every pending trial goes to `opslab worker` processes that
share the run's folder; the runner waits for them and collects each by trial id.

A worker runs ``remote.perform_trial``, the same ``run_trial`` a local pool runs, so a trial's record is
the same file written the same way: last, atomically, under ``trials/<id>/``. Each trial is a task (a job
of the shared work core): the database decides which worker holds it, and a trial whose worker is lost
(killed mid-trial; its heartbeat stops) is queued once more, ahead of new work, as attempt 2 — the retry
clears the folder before it starts, so its record replaces whatever the lost attempt left and the tables
hold it once. A trial lost on both attempts is recorded as an error (a value, like any failed trial), and
the run goes on. An interrupted runner stops the trials running on the workers as the local pool stops
its own (``_stop``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from opslab.errors import InvalidInput
from opslab.lab.artifacts import write_text
from opslab.lab.config import Resolved
from opslab.lab.control import RunStop
from opslab.lab.isolation import IsolationPlan
from opslab.lab.isolation.plan import OTEL_LEVELS
from opslab.lab.plan import Trial
from opslab.lab.pool import TrialDone
from opslab.lab.records import SCHEMA_VERSION, TrialRecord
from opslab.lab.thread_pool import STOP_GRACE_S, Attic, failed

if TYPE_CHECKING:  # opslab.jobs is not loaded by a local run: start-up time counts per run
    from opslab.jobs import TaskEnd

TRIAL_CALL = "opslab.lab.remote:perform_trial"
TRIES = 2  # the work core runs a task whose worker was lost once more
WAIT_S = 0.5


class TaskBatch(Protocol):
    """What the runner needs of a task queue (``opslab.jobs.TaskBatch``)."""

    def submit(self, items: Sequence[tuple[str, Sequence[str]]], call: str) -> None: ...
    def wait(self, timeout_s: float) -> list[TaskEnd]: ...
    def stop(self) -> int: ...


class TrialQueue(Protocol):
    """Opens one ``TaskBatch`` per run (``opslab.jobs.TaskQueue``)."""

    def batch(self) -> TaskBatch: ...

    def ready(self) -> None:
        """Raise ``Unavailable`` when no worker serves the queue."""
        ...


def check_queueable(resolved: Resolved, plan: IsolationPlan) -> None:
    """Refuse what only the runner's own process can serve its trials: the egress proxy and the
    OpenTelemetry collector live beside the runner, not beside a worker."""
    if plan.network == "allowlist_enforced":
        raise InvalidInput.for_field(
            "--executor", "rq: an allowlisted network needs the runner's egress proxy; run it locally"
        )
    if resolved.config.runtime.harness.integration_level in OTEL_LEVELS:
        raise InvalidInput.for_field(
            "--executor", "rq: OpenTelemetry levels need the runner's collector; run it locally"
        )


def run_queued(
    run_dir: Path,
    trials: list[Trial],
    attempts: dict[str, int],
    queue: TrialQueue,
) -> Generator[TrialDone, None, None]:
    """Submit ``trials`` to ``queue``; yield each as a worker finishes it (see the module docstring)."""
    with contextlib.closing(queued_batches(run_dir, trials, attempts, queue)) as batches:
        for done in batches:
            yield from done


def queued_batches(
    run_dir: Path,
    trials: list[Trial],
    attempts: dict[str, int],
    queue: TrialQueue,
    stop: RunStop | None = None,
) -> Generator[list[TrialDone], None, None]:
    """``run_queued``, the trials that finished in one wait on the queue together: the runner commits
    their records with one sync. Once ``stop`` is set: ``RunInterrupted``, the trials on the workers
    stopped."""
    if not trials:
        return
    batch = queue.batch()
    by_id = {t.trial_id: t for t in trials}
    batch.submit(
        [(t.trial_id, [str(run_dir), t.trial_id, str(attempts[t.trial_id])]) for t in trials], TRIAL_CALL
    )
    outstanding = set(by_id)
    try:
        while outstanding:
            if stop is not None and stop.is_set():
                raise stop.interrupted()
            done = []
            for end in batch.wait(WAIT_S):
                if end.task_id not in outstanding:
                    continue
                outstanding.discard(end.task_id)
                if end.lost:
                    record = _lost(run_dir, by_id[end.task_id], attempts[end.task_id] + end.attempts - 1)
                    done.append(TrialDone(end.task_id, record.outcome))
                    continue
                if end.error is not None or end.result is None:
                    raise failed(f"{end.task_id}: {end.error}")
                done.append(TrialDone(end.task_id, end.result))  # type: ignore[arg-type]
            if done:
                yield done
    except (KeyboardInterrupt, GeneratorExit):  # interrupted, or closed early: stop the running trials
        _stop(run_dir, batch, outstanding)
        raise


def _stop(run_dir: Path, batch: TaskBatch, outstanding: set[str]) -> None:
    """As the local pool stops: the running trials leave no record (each runs again on ``--resume``). Their
    folders are moved out of ``trials/`` before their tasks are cancelled (a worker kills a cancelled
    task's harness and writes no record for it), and again while the tasks end, within ``STOP_GRACE_S``:
    a worker that is slow to stop, or one the queue gave up on, cannot leave a folder behind by writing on.
    A trial whose record was written before the stop keeps it."""
    attic = Attic(run_dir / "trials", outstanding)
    attic.move_aside()
    batch.stop()
    deadline = time.monotonic() + STOP_GRACE_S
    while outstanding and time.monotonic() < deadline:
        for end in batch.wait(0.2):
            outstanding.discard(end.task_id)
        attic.move_aside()
    attic.clear()


def _lost(run_dir: Path, t: Trial, attempt: int) -> TrialRecord:
    """The record of a trial whose worker was lost on every try."""
    at = datetime.now(UTC)
    record = TrialRecord(
        schema_version=SCHEMA_VERSION,
        **t.identity(),
        outcome="error",
        error=f"the worker running this trial was lost on each of {TRIES} tries (killed?)",
        attempt=attempt,
        started_at=at,
        ended_at=at,
    )
    tdir = run_dir / "trials" / t.trial_id
    os.makedirs(tdir, exist_ok=True)
    write_text(tdir / "trial_output.json", record.model_dump_json(exclude_unset=True), durable=True)
    return record
