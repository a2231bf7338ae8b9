"""The pool on the runner's own threads (one trial at a time, or where fork is not available): the same
contract as the worker processes of ``pool`` — plan order, the ``Gate`` asked before each trial, and
closing the iterator stops at once with no record left by a killed harness."""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import shutil
import threading
import time
import traceback
from collections.abc import Generator, Iterable

from opslab import proc
from opslab.errors import OperationFailed
from opslab.lab.control import Gate, RunStop
from opslab.lab.plan import Trial
from opslab.lab.records import Outcome
from opslab.lab.trial import TrialContext, run_trial_written

STOP_GRACE_S = 10.0  # for trials told to stop: their harnesses are killed, then they end


def run_threads(
    ctx: TrialContext,
    trials: list[Trial],
    attempts: dict[str, int],
    slots: int,
    gate: Gate | None,
    batch_wait_s: float = 0.0,
    stop: RunStop | None = None,
    commit_every_s: float = 0.0,
) -> Generator[list[tuple[str, Outcome]], None, None]:
    """``trials`` on ``slots`` threads; yields (trial id, outcome) pairs as they finish, in batches: those
    that finish within ``batch_wait_s`` of the first of a batch, and no sooner than ``commit_every_s``
    after the batch before, come together. Once ``stop`` is set: ``RunInterrupted``, the running trials
    stopped as when the iterator is closed."""
    ctx.tie_to_runner = True
    feed = _Feed(trials, gate)
    results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
    if stop is not None:
        stop.notify(lambda: results.put(_STOPPED))

    def loop() -> None:
        try:
            while (t := feed.take()) is not None:
                try:
                    outcome, _ = run_trial_written(ctx, t, attempt=attempts[t.trial_id])
                    results.put((t.trial_id, outcome, None))
                except BaseException as exc:  # report and stop handing out: the runner decides
                    results.put((t.trial_id, None, describe(exc)))
                    feed.stop()
                    return
                finally:
                    feed.finished(t.trial_id)
        finally:
            results.put(None)

    pool = [threading.Thread(target=loop, name=f"opslab-trial-{i}", daemon=True) for i in range(slots)]
    for th in pool:
        th.start()
    failure: str | None = None
    ended, last = 0, -commit_every_s
    try:
        while ended < len(pool):
            batch: list[tuple[str, Outcome]] = []
            item = results.get()
            deadline = max(time.monotonic() + batch_wait_s, last + commit_every_s)
            while True:
                if item is _STOPPED and stop is not None:
                    raise stop.interrupted()
                if item is None:
                    ended += 1
                elif item[1] is None:
                    failure = failure or f"{item[0]}: {item[2]}"
                else:
                    batch.append((item[0], item[1]))
                wait = deadline - time.monotonic()
                if ended == len(pool) or wait <= 0:
                    break
                try:
                    item = results.get(timeout=wait)
                except queue.Empty:
                    break
            if batch:
                last = time.monotonic()
                yield batch
    except BaseException:  # closed early or interrupted: stop now
        _abandon(ctx, feed, pool)
        raise
    if failure:
        raise failed(failure)


def _abandon(ctx: TrialContext, feed: _Feed, pool: list[threading.Thread]) -> None:
    """Stop the threads' trials so that none leaves a record (``Attic``): their folders moved aside and
    their harnesses killed until every thread has ended."""
    attic = Attic(os.path.join(ctx.run_dir, "trials"), feed.stop())
    deadline = time.monotonic() + STOP_GRACE_S
    while True:
        attic.move_aside()
        proc.kill_running()
        alive = [th for th in pool if th.is_alive()]
        if not alive or time.monotonic() > deadline:
            break
        alive[0].join(0.05)
    attic.clear()


class Attic:
    """Where stopped trials' folders go: out of ``trials/`` before their harnesses are killed, so that what
    they still write fails instead of leaving a record (each runs again on ``--resume``). A trial whose
    record was written before the stop keeps it. ``move_aside`` is repeated while the trials end (one may
    be creating its folder); ``clear`` moves them once more, then deletes them."""

    def __init__(self, trials_dir: str | os.PathLike[str], running: Iterable[str]) -> None:
        self.trials_dir = os.fspath(trials_dir)
        self.doomed = [
            t for t in running if not os.path.exists(os.path.join(self.trials_dir, t, "trial_output.json"))
        ]
        self.path = os.path.join(self.trials_dir, f".interrupted-{secrets.token_hex(4)}")
        os.makedirs(self.path, exist_ok=True)
        self._moves = 0

    def move_aside(self) -> None:
        for trial_id in self.doomed:
            self._moves += 1
            with contextlib.suppress(FileNotFoundError):
                os.rename(
                    os.path.join(self.trials_dir, trial_id),
                    os.path.join(self.path, f"{trial_id}.{self._moves}"),
                )

    def clear(self) -> None:
        self.move_aside()
        shutil.rmtree(self.path, ignore_errors=True)


class _Feed:
    """Hands the runner's threads the next trial in plan order: none once stopped; waits while paused."""

    def __init__(self, trials: list[Trial], gate: Gate | None) -> None:
        self.trials, self.gate = trials, gate
        self.lock = threading.Lock()
        self.next = 0
        self.stopped = False
        self.running: set[str] = set()

    def take(self) -> Trial | None:
        if self.gate is not None and not self.gate.wait(lambda: self.stopped):
            return None
        with self.lock:
            if self.stopped or self.next >= len(self.trials):
                return None
            t = self.trials[self.next]
            self.next += 1
            self.running.add(t.trial_id)
            return t

    def finished(self, trial_id: str) -> None:
        with self.lock:
            self.running.discard(trial_id)

    def stop(self) -> set[str]:
        """Hand out nothing more; the trials running now."""
        with self.lock:
            self.stopped = True
            return set(self.running)


# (trial id, outcome, None) for a finished trial, (trial id, None, exception) for a runner failure; None
# when a thread ends; _STOPPED when the run's stop is set.
_Result = tuple[str, Outcome | None, str | None] | None
_STOPPED: _Result = ("", None, "stopped")


def describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()[:500]


def failed(what: str) -> OperationFailed:
    return OperationFailed(f"the runner failed on trial {what}; fix the cause and continue with --resume")
