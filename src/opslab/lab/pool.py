"""Trial pools. The runner's own work per trial (workspace, snapshots, validation) is Python, so with
threads alone one core does it all; forked worker processes spread it over every core. Where fork is
not available, or for one trial at a time, trials run on threads in this process.

The process pool is deliberately thin: workers take the next trial index from a shared counter and
report each finished trial as one line on a pipe (``concurrent.futures.ProcessPoolExecutor`` pickles a
call and a result per trial through two queues and a manager thread; measured here, that cost the runner
as much CPU as the trials' own bookkeeping). The pool hands the runner the trials that finished in
batches — all it read within ``BATCH_WAIT_S`` of the first, and no sooner than ``COMMIT_EVERY_S`` after
the batch before — so that one sync commits many records (``commit``). Worker processes die with the
runner (PR_SET_PDEATHSIG on Linux) and take their running harnesses with them, so a runner killed
mid-run leaves nothing running; `--resume` then runs exactly the trials without an output.

Before taking a trial, a worker asks the run's ``Gate``: while the run is paused it waits, so no trial
starts and running ones finish. Closing the pool's iterator early (the runner interrupted) stops it at
once: no trial starts, the running harnesses' process groups are killed, and the trials they ran leave
no record — workers are told with SIGTERM and exit without writing one; on threads, the trials' folders
are moved out of ``trials/`` before their harnesses are killed.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, NamedTuple

from opslab import proc
from opslab.errors import OperationFailed
from opslab.lab.control import Gate, RunStop
from opslab.lab.plan import Trial
from opslab.lab.records import Outcome
from opslab.lab.thread_pool import STOP_GRACE_S, describe, failed, run_threads
from opslab.lab.trial import TrialAbandoned, TrialContext, run_trial_written

# One worker process per core, each running its share of the slots on threads: a trial mostly waits for
# its harness, and fewer processes cost less in forks, copy-on-write faults and switches (8 slots on 2
# cores: 2 processes of 4 threads ran the overhead benchmark ~4 % faster than 4 of 2).
PROCESSES_PER_CPU = 1
# How long the pool gathers finished trials after the first before handing them over as one batch: the
# runner syncs its record log once per batch (a sync costs as much CPU as a no-op trial's bookkeeping).
BATCH_WAIT_S = 0.005
# At most one batch (one sync of the record log) this often: 400 no-op trials committed ~110 batches, each
# an fdatasync (a flush of the device); now ~25.
# A finished trial is counted and shown at most this much later.
COMMIT_EVERY_S = 0.05


class TrialDone(NamedTuple):
    """A finished trial as the pool reports it; its full record is on disk by then. ``record``: that
    file's bytes when the pool has them (the runner then commits them without reading the file)."""

    trial_id: str
    outcome: Outcome
    record: bytes | None = None


def run_pool(
    ctx: TrialContext,
    trials: list[Trial],
    attempts: dict[str, int],
    concurrency: int,
    gate: Gate | None = None,
    stop: RunStop | None = None,
    started: Callable[[], None] | None = None,
) -> Generator[list[TrialDone], None, None]:
    """Run ``trials`` with at most ``concurrency`` at once; yield them in batches as they finish (see
    ``BATCH_WAIT_S``). Close the iterator to stop early (see the module docstring); once ``stop`` is set,
    it raises ``RunInterrupted`` and stops the same way. ``started`` is called once the trials' workers
    are forked (or, with no fork, as they start): from then on this process may start threads."""
    if not trials:
        return
    slots = min(concurrency, len(trials))
    if slots > 1 and "fork" in multiprocessing.get_all_start_methods():
        yield from _processes(ctx, trials, attempts, slots, gate, stop, started)
    else:
        if started is not None:
            started()
        threads = run_threads(ctx, trials, attempts, slots, gate, BATCH_WAIT_S, stop, COMMIT_EVERY_S)
        with contextlib.closing(threads) as done:
            for batch in done:
                yield [TrialDone(trial_id, outcome) for trial_id, outcome in batch]


def _processes(
    ctx: TrialContext,
    trials: list[Trial],
    attempts: dict[str, int],
    slots: int,
    gate: Gate | None,
    stop: RunStop | None,
    started: Callable[[], None] | None,
) -> Iterator[list[TrialDone]]:
    mp = multiprocessing.get_context("fork")
    processes = min(slots, PROCESSES_PER_CPU * (os.cpu_count() or 1))
    threads = math.ceil(slots / processes)
    counter = mp.Value("q", 0)
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    workers = [
        mp.Process(
            target=_worker_main,
            args=(ctx, trials, attempts, counter, write_fd, threads, parent, gate),
            name=f"opslab-trial-worker-{i}",
            daemon=True,
        )
        for i in range(processes)
    ]
    # Everything alive now (modules, the plan, the template) lives as long as the run: out of the
    # collector's sight, in the workers (whose collections would dirty copy-on-write pages) and in this
    # process (whose collections during the run and its analysis walked it again and again).
    gc.freeze()
    try:
        for w in workers:
            w.start()
    finally:
        os.close(write_fd)  # from here on, EOF on the pipe means every worker has exited
    if started is not None:
        started()
    failure: str | None = None
    reported = 0
    aborted = False
    # Kept open until the workers are gone: one that finishes a trial meanwhile must not hit a closed pipe.
    try:
        for lines in _batches(read_fd, len(trials), stop):
            batch = []
            for line in lines:
                msg = json.loads(line)
                if "exception" in msg:
                    failure = failure or f"{msg['trial_id']}: {msg['exception']}"
                    with counter.get_lock():
                        counter.value = len(trials)  # stop handing out trials
                    continue
                record = msg.get("record")
                batch.append(TrialDone(msg["trial_id"], msg["outcome"], record and (record + "\n").encode()))
            reported += len(batch)
            if batch:
                yield batch
    except BaseException:  # closed early or interrupted: stop now
        aborted = True
        raise
    finally:
        with counter.get_lock():
            counter.value = len(trials)
        if aborted:
            for w in workers:
                if w.is_alive() and w.pid is not None:
                    os.kill(w.pid, signal.SIGTERM)  # the worker kills its harnesses' groups, then exits
        for w in workers:
            wait = STOP_GRACE_S if aborted else None if failure or reported == len(trials) else 30
            w.join(timeout=wait)
            if w.is_alive():
                w.kill()
                w.join()
        os.close(read_fd)
    if failure:
        raise failed(failure)
    if reported < len(trials) and not (gate is not None and gate.stopped()):
        codes = sorted({w.exitcode for w in workers if w.exitcode})
        raise OperationFailed(
            f"{len(trials) - reported} trials did not finish: a worker process died (exit codes {codes}); "
            "continue with --resume"
        )


def _batches(fd: int, expected: int, stop: RunStop | None = None) -> Iterator[list[bytes]]:
    """The complete lines on the pipe ``fd`` until EOF: those that arrive within ``BATCH_WAIT_S`` of the
    first of a batch, and no sooner than ``COMMIT_EVERY_S`` after the batch before, come in one list (the
    runner sleeps meanwhile: one wake-up and one sync per batch, not per trial). Once the ``expected``
    lines are all in, nothing more is waited for. ``stop`` set while it waits: ``RunInterrupted``."""
    pending = b""
    readable = select.poll()
    readable.register(fd, select.POLLIN)
    waiting = select.poll()  # for a worker's line or the stop, whichever comes first
    waiting.register(fd, select.POLLIN)
    if stop is not None:
        waiting.register(stop.fileno(), select.POLLIN)
    seen, last = 0, -COMMIT_EVERY_S
    while True:
        if stop is not None:
            ready = {f for f, _ in waiting.poll()}
            if stop.fileno() in ready:
                raise stop.interrupted()
        chunk = os.read(fd, 1 << 16)  # blocks until a worker writes, or every one has exited
        if not chunk:
            return
        pending += chunk
        if seen + pending.count(b"\n") < expected:
            time.sleep(max(BATCH_WAIT_S, last + COMMIT_EVERY_S - time.monotonic()))
        while readable.poll(0):
            more = os.read(fd, 1 << 16)
            if not more:
                break
            pending += more
        *lines, pending = pending.split(b"\n")
        seen += len(lines)
        last = time.monotonic()
        yield lines


def _worker_main(
    ctx: TrialContext,
    trials: list[Trial],
    attempts: dict[str, int],
    counter: Any,
    write_fd: int,
    threads: int,
    parent: int,
    gate: Gate | None,
) -> None:
    # Ctrl-C is the runner's to handle; the worker stops when the runner stops handing out trials.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The runner gone (kill -9 included) or stopping: take the running harnesses down too, then go.
    # Without this they would run on, re-parented, with no deadline, writing into workspaces a resume
    # reuses.
    signal.signal(signal.SIGTERM, _runner_gone)
    proc.die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:  # the runner died before the line above took effect
        os._exit(1)

    def stopping() -> bool:
        return bool(counter.value >= len(trials))

    def loop() -> None:
        while True:
            if gate is not None and not gate.wait(stopping):
                return
            with counter.get_lock():
                i = counter.value
                if i >= len(trials):
                    return
                counter.value = i + 1
            t = trials[i]
            try:
                outcome, written = run_trial_written(
                    ctx, t, attempt=attempts[t.trial_id], abandoned=_RUNNER_GONE
                )
                msg: dict[str, str] = {"trial_id": t.trial_id, "outcome": outcome, "record": written}
            except TrialAbandoned:  # the runner is gone and this trial's harness with it: no record
                return
            except BaseException as exc:  # report, then stop this worker: the runner decides
                msg = {"trial_id": t.trial_id, "exception": describe(exc)}
            line = json.dumps(msg).encode() + b"\n"
            if len(line) > select.PIPE_BUF:  # a record this big the runner reads from its file
                msg.pop("record", None)
                line = json.dumps(msg).encode() + b"\n"
            # One line under PIPE_BUF: a single write, never interleaved with another worker's.
            os.write(write_fd, line)
            if "exception" in msg:
                return

    if threads == 1:
        loop()
        return
    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()


class _Flag:
    """``threading.Event``'s ``set`` and ``is_set`` without its lock, for a signal handler: the runner's
    death signal comes once for each of its threads that dies, and a second one arriving while the handler
    held an Event's lock ran the handler again inside it, which then waited for that lock for ever — the
    worker hung and its harnesses ran on (seen: four nested handlers after a ``kill -9`` of the runner)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True


# Set in a worker when its runner goes, before the harnesses are killed: a thread whose harness dies of
# that must not record its trial (the other threads run on while the handler kills and exits).
_RUNNER_GONE = _Flag()


def _runner_gone(signum: int, frame: object) -> None:
    if _RUNNER_GONE.is_set():  # handled already, or being handled by the frame this signal interrupted
        return
    _RUNNER_GONE.set()
    proc.close_spawning()  # a harness being started now is there to be killed below; none after
    proc.kill_running()
    _kill_children()
    os._exit(1)


def _kill_children() -> None:
    """Kill this worker's children and their groups: a harness being started as the signal came is not
    yet among those ``kill_running`` knows, and would live on (Linux: read from /proc)."""
    me = os.getpid()
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me:
                for kill in (os.killpg, os.kill):  # its group once it has one, itself before
                    with contextlib.suppress(OSError):
                        kill(int(entry), signal.SIGKILL)
