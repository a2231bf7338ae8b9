"""The lab runner: executes the plan's trials concurrently, each finished trial durable on disk before it
is counted (its record group-committed, see ``commit``), resumable after any interruption (even kill -9),
errored trials re-runnable."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import JsonValue

from opslab.errors import Conflict, InvalidInput, NotFound
from opslab.lab.artifacts import (
    canonical_digest,
    new_run_id,
    now,
    read_json,
    read_model,
    write_json,
    write_model,
)
from opslab.lab.commit import RecordLog, reconcile
from opslab.lab.config import Resolved
from opslab.lab.control import (
    Gate,
    RunInterrupted,
    RunStop,
    ensure_control,
    interrupt_on_signals,
    write_control,
)
from opslab.lab.isolation import IsolationPlan, plan_of
from opslab.lab.plan import Trial, count_trials, expand_trials
from opslab.lab.pool import TrialDone, run_pool
from opslab.lab.queued_pool import TrialQueue, queued_batches
from opslab.lab.records import Isolation, Manifest, Retry, RunStatus, TrialRecord, runner_info
from opslab.lab.trial import TrialContext


@dataclass
class LabProgress:
    done: int
    failed: int
    total: int
    message: str
    trial: TrialDone | None = None  # the trial that just finished, if one did


LabProgressFn = Callable[[LabProgress], None]
TrialDoneFn = Callable[[TrialDone], None]


def isolation_note(resolved: Resolved, plan: IsolationPlan | None = None) -> Isolation:
    """The isolation trials get (``plan``, or the config's own when there is no run yet)."""
    return Isolation.model_validate((plan or plan_of(resolved)).describe())


def prepare_run(
    resolved: Resolved,
    *,
    overrides: Mapping[str, JsonValue] | None = None,
    isolation: IsolationPlan | None = None,
) -> Path:
    run_id = new_run_id()
    run_dir = resolved.lab_dir / "runs" / run_id
    run_dir.mkdir(parents=True)
    data = resolved.config.model_dump(mode="json")
    write_json(run_dir / "resolved_experiment.json", data)
    (run_dir / "resolved_experiment.digest").write_text(canonical_digest(data) + "\n")
    manifest = Manifest(
        **runner_info(),
        run_id=run_id,
        experiment_id=resolved.config.experiment.id,
        experiment_path=str(resolved.experiment_path),
        project_root=str(resolved.project_root),
        dataset_path=str(resolved.dataset_path),
        created_at=now(),
        total_trials=count_trials(resolved),
        overrides=dict(overrides or {}),
        isolation=isolation_note(resolved, isolation),
    )
    write_model(run_dir / "manifest.json", manifest)
    return run_dir


def resolved_for_run(run_dir: Path, resolved_now: Resolved) -> Resolved:
    """Resume must run the same experiment the run started with."""
    frozen = read_json(run_dir / "resolved_experiment.json")
    if canonical_digest(frozen) != canonical_digest(resolved_now.config.model_dump(mode="json")):
        raise InvalidInput.for_field(
            "--resume", "the experiment changed since this run started; start a new run"
        )
    return resolved_now


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def find_run(resolved: Resolved, run_id: str) -> Path:
    """The directory of an existing run; an id that cannot name one (too long, a path) is not found."""
    run_dir = resolved.lab_dir / "runs" / run_id
    if not RUN_ID.fullmatch(run_id) or not (run_dir / "manifest.json").is_file():
        shown = run_id if len(run_id) <= 80 else run_id[:77] + "..."
        raise NotFound(f"no lab run {shown!r} under {resolved.lab_dir / 'runs'}", details={"run_id": shown})
    return run_dir


@contextlib.contextmanager
def own_run(run_dir: Path, *, wait_s: float = 5.0) -> Iterator[None]:
    """Hold the run directory's lock while running it: a second runner (or a resume) waits up to
    ``wait_s`` for the owner to go, then refuses. The lock is an flock, so the kernel drops it when the
    owner dies, kill -9 included — and only once its trial workers, which share it, are gone too."""
    fd = os.open(run_dir / "runner.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    raise Conflict(
                        f"lab run {run_dir.name} is being run by another runner (pid {owner}); "
                        "wait for it to finish or stop it, then --resume",
                        details={"run_id": run_dir.name, "pid": owner},
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def execute(
    resolved: Resolved,
    run_dir: Path,
    *,
    concurrency: int,
    env_base: dict[str, str],
    retry_errors: bool = False,
    progress: LabProgressFn | None = None,
    on_trial: TrialDoneFn | None = None,
    isolation: IsolationPlan | None = None,
    queue: TrialQueue | None = None,
    stop: RunStop | None = None,
    started: Callable[[], None] | None = None,
) -> Manifest:
    """Run every trial of the plan without a record yet (and, with ``retry_errors``, those that errored).
    ``on_trial`` hears of each trial as it finishes, in this process; ``isolation`` is the run's plan
    (with the services the runner started), else the config's.

    The run's control file is obeyed (no trial starts while it is paused, none again once it is stopped:
    the run then ends ``stopped``) and set to running when this call starts (written if the run has
    none): a runner started on a paused or stopped run was asked to run it. On SIGINT or SIGTERM, or once
    ``stop`` is set (a job's cancel), the running harnesses are killed, the manifest says ``interrupted``
    (``paused`` if the run was paused) and ``RunInterrupted`` is raised; ``--resume`` continues. With a
    ``queue`` the trials run on its workers (``queued_pool``) instead of this process's pool;
    ``concurrency`` is then theirs to decide. ``started`` is called once this process's trial workers
    run (``run_pool``): work of the caller's that may overlap the trials starts then."""
    trials = expand_trials(resolved)
    manifest_path = run_dir / "manifest.json"
    manifest = read_model(manifest_path, Manifest)
    finished = reconcile(run_dir, (t.trial_id for t in trials))
    pending: list[Trial] = []
    retried: list[Retry] = []
    for t in trials:
        if t.trial_id not in finished:
            pending.append(t)
            continue
        if retry_errors:
            previous = TrialRecord.model_validate_json(finished[t.trial_id])
            if previous.outcome == "error":
                retried.append(Retry(trial_id=t.trial_id, previous_error=previous.error, at=now()))
                pending.append(t)
    if retried:
        manifest.retries = [*manifest.retries, *retried]
    gate = Gate(run_dir)
    ensure_control(run_dir)
    if gate.state() != "running":
        write_control(run_dir, "running", "resumed by a new runner")
    if retried or manifest.status != "running":
        manifest.status, manifest.finished_at = "running", None
        write_model(manifest_path, manifest, durable=True)
    retried_ids = {r.trial_id for r in retried}
    total, already = len(trials), len(trials) - len(pending)
    if progress:
        progress(LabProgress(already, 0, total, "starting"))
    attempts = {t.trial_id: 2 if t.trial_id in retried_ids else 1 for t in pending}
    tally = _Tally(already, total, progress)
    stop = stop if stop is not None else RunStop()
    with interrupt_on_signals(stop):  # the handlers stay in place until the manifest says what happened
        try:
            if stop.is_set():  # stopped before a trial started
                raise stop.interrupted()
            pool: Generator[list[TrialDone], None, None]
            if queue is not None:
                pool = queued_batches(run_dir, pending, attempts, queue, stop)
            else:
                # Records are made durable here, a batch at a time, not by each trial.
                ctx = TrialContext(resolved, run_dir, env_base, isolation=isolation, sync_records=False)
                pool = run_pool(ctx, pending, attempts, max(1, concurrency), gate, stop, started)
            # The pool is closed at once on an interrupt: that stops the trials (and their workers' zygotes).
            with contextlib.closing(pool), _closing_workers(isolation), RecordLog(run_dir) as log:
                for batch in pool:
                    log.commit(
                        (done.trial_id for done in batch),
                        {done.trial_id: done.record for done in batch if done.record is not None},
                    )
                    for done in batch:
                        tally.count(done)
                        if on_trial:
                            on_trial(done)
        except KeyboardInterrupt as exc:
            status: RunStatus = "paused" if gate.paused() else "interrupted"
            _set_status(manifest_path, status)
            name = exc.signal_name if isinstance(exc, RunInterrupted) else "SIGINT"
            raise RunInterrupted(name, run_dir=run_dir, status=status) from None
    stopped = tally.done < total and gate.stopped()  # trials left that the stop kept from starting
    return _set_status(manifest_path, "stopped" if stopped else "completed")


@contextlib.contextmanager
def _closing_workers(isolation: IsolationPlan | None) -> Iterator[None]:
    try:
        yield
    finally:
        if isolation is not None:
            isolation.close()


def _set_status(manifest_path: Path, status: RunStatus) -> Manifest:
    final = read_model(manifest_path, Manifest)
    final.status, final.finished_at = status, now()
    write_model(manifest_path, final, durable=True)
    return final


class _Tally:
    def __init__(self, already: int, total: int, progress: LabProgressFn | None) -> None:
        self.done, self.failed, self.total, self.progress = already, 0, total, progress

    def count(self, done: TrialDone) -> None:
        self.done += 1
        self.failed += done.outcome == "error"
        if self.progress:
            message = f"{done.trial_id} {done.outcome}"
            self.progress(LabProgress(self.done, self.failed, self.total, message, done))
