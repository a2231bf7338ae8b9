"""Reporting finished trials as agent runs, while the run goes on.

The runner hands each finished trial to a ``ReportQueue`` as its completion arrives; a thread of the
runner process (never a forked worker) reads the trial's files, builds its ``AgentRunIn`` and gives it to
a ``TrialReporter`` (in the CLI: the opslab service). Reporting can neither slow nor fail the run: the
thread starts with the first finished trial (after the workers are forked), a failed report is counted,
and after ``GIVE_UP_AFTER`` failed calls in a row the rest are counted without calling, so a service
that is down costs a few connection attempts, not one per trial.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from opslab.errors import OpslabError, PayloadTooLarge
from opslab.lab.pool import TrialDone
from opslab.lab.untrusted import read_beneath

if TYPE_CHECKING:
    from opslab.telemetry import AgentRunIn, BatchResult

GIVE_UP_AFTER = 3
BATCH = 50
STDERR_TAIL_BYTES = 4096


@runtime_checkable
class TrialReporter(Protocol):
    """Where finished trials go, as agent runs. ``report`` raises an ``OpslabError`` when it cannot."""

    def report(self, run: AgentRunIn) -> None: ...


@runtime_checkable
class BatchTrialReporter(TrialReporter, Protocol):
    """A reporter that also takes many runs in one call; returns, per run, None or why it was refused."""

    def report_batch(self, runs: Sequence[AgentRunIn]) -> list[str | None]: ...


class RunIngest(Protocol):
    """The service's ingest endpoints as its client offers them (``opslab.client.OpslabClient``)."""

    def ingest_run(self, run: AgentRunIn, /) -> object: ...

    def ingest_batch(self, runs: Sequence[AgentRunIn], /) -> BatchResult: ...


class IngestReporter:
    """A ``BatchTrialReporter`` over the service's ingest: a batch in one request (one by one when the
    batch is over the service's body limit)."""

    def __init__(self, ingest: RunIngest) -> None:
        self.ingest = ingest

    def report(self, run: AgentRunIn) -> None:
        self.ingest.ingest_run(run)

    def report_batch(self, runs: Sequence[AgentRunIn]) -> list[str | None]:
        try:
            result = self.ingest.ingest_batch(runs)
        except PayloadTooLarge:
            return [self._refusal(run) for run in runs]
        refused: list[str | None] = [None] * len(runs)
        for item in result.results:
            if item.status == "error":
                refused[item.index] = str((item.error or {}).get("message") or "refused")
        return refused

    def _refusal(self, run: AgentRunIn) -> str | None:
        try:
            self.report(run)
        except OpslabError as exc:
            return exc.message
        return None


# A reporter, or a function returning one (None: reporting is off), called once from the reporting
# thread: whatever connecting costs (imports, settings, a client) is then off the trials' critical path.
ReporterSource = TrialReporter | Callable[[], TrialReporter | None]


@dataclass
class ReportTally:
    reported: int = 0
    failures: int = 0
    error: str | None = None  # the first failure's reason


@dataclass(frozen=True)
class TrialSource:
    """What a trial's agent run is built from, besides its files."""

    run_dir: Path
    experiment_id: str
    harness_command: list[str]
    bindings: dict[str, dict[str, object]]  # by variant id
    with_events: bool = True  # False for integration level cli_basic: the runner ignores events there


class ReportQueue:
    """Finished trials in, agent runs out to the reporter, from one background thread (see the module)."""

    def __init__(self, source: ReporterSource, trials: TrialSource) -> None:
        self._source, self._trials = source, trials
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._failed_in_a_row = 0
        self._off = False  # the source said reporting is off: trials are no longer queued
        self.tally = ReportTally()

    def submit(self, done: TrialDone) -> None:
        if self._off:  # a wake-up of the reporting thread per trial, for nothing
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="opslab-lab-report", daemon=True)
            self._thread.start()
        self._queue.put(done.trial_id)

    def close(self, *, wait: bool = True) -> ReportTally:
        """Finish reporting what was submitted (``wait=False``: leave it, as on Ctrl-C)."""
        if self._thread is not None:
            self._queue.put(None)
            if wait:
                self._thread.join()
        return self.tally

    def _main(self) -> None:
        # Reporting can wait; the trials cannot. Linux: this thread alone is niced, not the runner.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            reporter = self._source() if not isinstance(self._source, TrialReporter) else self._source
        except Exception as exc:  # noqa: BLE001 - a reporter that cannot connect must not stop the run
            reporter, self.tally.error = None, _reason(exc)
            self._failed_in_a_row = GIVE_UP_AFTER
        else:
            if reporter is None:  # reporting is off: drain and ignore (and stop queueing)
                self._off = True
                while self._queue.get() is not None:
                    pass
                return
        closing = False
        while not closing:
            batch: list[str] = []
            item = self._queue.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            closing = item is None
            if batch:
                self._send(reporter, batch)

    def _send(self, reporter: TrialReporter | None, trial_ids: list[str]) -> None:
        if reporter is None or self._failed_in_a_row >= GIVE_UP_AFTER:
            self.tally.failures += len(trial_ids)
            return
        runs = []
        for trial_id in trial_ids:
            try:
                runs.append(load_agent_run(self._trials, trial_id))
            except Exception as exc:  # noqa: BLE001 - counted: one odd trial must not stop the others
                self._fail(1, f"{trial_id}: {_reason(exc)}")
        if not runs:
            return
        if len(runs) > 1 and isinstance(reporter, BatchTrialReporter):
            try:
                refused = [r for r in reporter.report_batch(runs) if r is not None]
            except Exception as exc:  # noqa: BLE001 - the service, its client, anything: counted
                self._fail(len(runs), _reason(exc))
                return
            self._succeed(len(runs) - len(refused))
            if refused:
                self._fail(len(refused), refused[0])
            return
        for run in runs:
            if self._failed_in_a_row >= GIVE_UP_AFTER:
                self.tally.failures += 1
                continue
            try:
                reporter.report(run)
            except Exception as exc:  # noqa: BLE001 - the service, its client, anything: counted
                self._fail(1, f"{run.run_id}: {_reason(exc)}")
            else:
                self._succeed(1)

    def _succeed(self, n: int) -> None:
        self.tally.reported += n
        if n:
            self._failed_in_a_row = 0

    def _fail(self, n: int, reason: str) -> None:
        self.tally.failures += n
        self.tally.error = self.tally.error or reason
        self._failed_in_a_row += 1


def load_agent_run(trials: TrialSource, trial_id: str) -> AgentRunIn:
    """A finished trial's agent run, from its files: the record, the harness events and spans, the stderr
    tail."""
    from opslab.lab.agent_run import trial_to_agent_run
    from opslab.lab.artifacts import read_model
    from opslab.lab.events import EVENTS_FILES, read_trial_events
    from opslab.lab.records import TrialRecord
    from opslab.lab.span_steps import read_spans

    tdir = trials.run_dir / "trials" / trial_id
    output = tdir / "trial_output.json"
    record = read_model(output, TrialRecord)
    events = read_trial_events(str(tdir), *EVENTS_FILES).events if trials.with_events else []
    return trial_to_agent_run(
        record,
        lab_run_id=trials.run_dir.name,
        experiment_id=trials.experiment_id,
        events=events,
        stderr_tail=stderr_tail(tdir),
        harness_command=trials.harness_command,
        bindings=trials.bindings.get(record.variant_id),
        finished_at=datetime.fromtimestamp(output.stat().st_mtime, UTC),
        spans=read_spans(str(tdir)) if trials.with_events else (),
    )


def stderr_tail(trial_dir: Path, limit: int = STDERR_TAIL_BYTES) -> str:
    """The last lines of the trial's ``out/stderr.log``, at most ``limit`` bytes (a partial first line
    dropped), read as untrusted data (the harness could have left a link in its place)."""
    taken = read_beneath(str(trial_dir), "out/stderr.log", limit=limit, tail=True)
    data, size = taken.data or b"", taken.size
    text = data.decode(errors="replace").replace("\x00", "")
    if len(data) == limit and size > limit and "\n" in text:
        text = text.split("\n", 1)[1]
    return text.strip()


def _reason(exc: BaseException) -> str:
    return (exc.message if isinstance(exc, OpslabError) else f"{type(exc).__name__}: {exc}")[:500]
