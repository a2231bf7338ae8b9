"""Trial pools. The runner's own work per trial (workspace, snapshots, validation) is Python, so with
threads alone one core does it all; forked worker processes spread it over every core. Where fork is
not available, or for one trial at a time, trials run on threads in this process.

The process pool is deliberately thin: workers take the next trial index from a shared counter and
report each finished trial as one line on a pipe (``concurrent.futures.ProcessPoolExecutor`` pickles a
call and a result per trial through two queues and a manager thread; measured here, that cost the runner
as much CPU as the trials' own bookkeeping). Worker processes die with the runner (PR_SET_PDEATHSIG on
Linux) and take their running harnesses with them, so a runner killed mid-run leaves nothing running;
`--resume` then runs exactly the trials without an output.
"""

from __future__ import annotations

import gc
import json
import math
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from opslab import proc
from opslab.errors import OperationFailed
from opslab.lab.plan import Trial
from opslab.lab.records import Outcome
from opslab.lab.trial import TrialContext, run_trial

# Threads per worker process once there are more slots than this many processes per core: trials that
# mostly wait (remote APIs) need concurrency, not one process each.
PROCESSES_PER_CPU = 2


class TrialDone(NamedTuple):
    """A finished trial as the pool reports it; its full record is on disk by then."""

    trial_id: str
    outcome: Outcome


def run_pool(
    ctx: TrialContext, trials: list[Trial], attempts: dict[str, int], concurrency: int
) -> Iterator[TrialDone]:
    """Run ``trials`` with at most ``concurrency`` at once; yield each as it finishes."""
    if not trials:
        return
    slots = min(concurrency, len(trials))
    if slots > 1 and "fork" in multiprocessing.get_all_start_methods():
        yield from _processes(ctx, trials, attempts, slots)
        return
    ctx.tie_to_runner = True
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="opslab-trial") as pool:
        futures = [(t.trial_id, pool.submit(run_trial, ctx, t, attempt=attempts[t.trial_id])) for t in trials]
        try:
            for trial_id, f in futures:
                try:
                    record = f.result()
                except Exception as exc:
                    raise _failed(f"{trial_id}: {_describe(exc)}") from exc
                yield TrialDone(record.trial_id, record.outcome)
        finally:
            for _, f in futures:
                f.cancel()


def _processes(
    ctx: TrialContext, trials: list[Trial], attempts: dict[str, int], slots: int
) -> Iterator[TrialDone]:
    mp = multiprocessing.get_context("fork")
    processes = min(slots, PROCESSES_PER_CPU * (os.cpu_count() or 1))
    threads = math.ceil(slots / processes)
    counter = mp.Value("q", 0)
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    workers = [
        mp.Process(
            target=_worker_main,
            args=(ctx, trials, attempts, counter, write_fd, threads, parent),
            name=f"opslab-trial-worker-{i}",
            daemon=True,
        )
        for i in range(processes)
    ]
    # Objects the collector would otherwise walk in every worker, dirtying copy-on-write pages.
    gc.freeze()
    try:
        for w in workers:
            w.start()
    finally:
        gc.unfreeze()
        os.close(write_fd)  # from here on, EOF on the pipe means every worker has exited
    failure: str | None = None
    reported = 0
    try:
        with os.fdopen(read_fd, "rb", buffering=1 << 16) as reader:
            for line in reader:
                msg = json.loads(line)
                if "exception" in msg:
                    failure = failure or f"{msg['trial_id']}: {msg['exception']}"
                    with counter.get_lock():
                        counter.value = len(trials)  # stop handing out trials
                    continue
                reported += 1
                yield TrialDone(msg["trial_id"], msg["outcome"])
    finally:
        with counter.get_lock():
            counter.value = len(trials)
        for w in workers:
            w.join(timeout=None if failure or reported == len(trials) else 30)
            if w.is_alive():
                w.kill()
                w.join()
    if failure:
        raise _failed(failure)
    if reported < len(trials):
        codes = sorted({w.exitcode for w in workers if w.exitcode})
        raise OperationFailed(
            f"{len(trials) - reported} trials did not finish: a worker process died (exit codes {codes}); "
            "continue with --resume"
        )


def _worker_main(
    ctx: TrialContext,
    trials: list[Trial],
    attempts: dict[str, int],
    counter: Any,
    write_fd: int,
    threads: int,
    parent: int,
) -> None:
    # Ctrl-C is the runner's to handle; the worker stops when the runner stops handing out trials.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The runner gone (kill -9 included): take the running harnesses down too, then go. Without this
    # they would run on, re-parented, with no deadline, writing into workspaces a resume reuses.
    signal.signal(signal.SIGTERM, _runner_gone)
    proc.die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:  # the runner died before the line above took effect
        os._exit(1)

    def loop() -> None:
        while True:
            with counter.get_lock():
                i = counter.value
                if i >= len(trials):
                    return
                counter.value = i + 1
            t = trials[i]
            try:
                record = run_trial(ctx, t, attempt=attempts[t.trial_id])
                msg: dict[str, str] = {"trial_id": t.trial_id, "outcome": record.outcome}
            except BaseException as exc:  # report, then stop this worker: the runner decides
                msg = {"trial_id": t.trial_id, "exception": _describe(exc)}
            # One line well under PIPE_BUF: a single write, never interleaved with another worker's.
            os.write(write_fd, json.dumps(msg).encode() + b"\n")
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


def _runner_gone(signum: int, frame: object) -> None:
    proc.kill_running()
    os._exit(1)


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()[:500]


def _failed(what: str) -> OperationFailed:
    return OperationFailed(f"the runner failed on trial {what}; fix the cause and continue with --resume")
