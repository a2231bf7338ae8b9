"""Reporting finished trials: every trial reported once, failures counted (never raised), a dead service
given up on after a few calls, batches where the reporter takes them, reporting off when there is no
reporter. Fakes come in through the ``TrialReporter`` / ``RunIngest`` protocols."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from opslab.errors import InvalidInput, PayloadTooLarge, Unavailable
from opslab.lab import IngestReporter, TrialDone, TrialRecord
from opslab.lab.report import GIVE_UP_AFTER, ReportQueue, TrialSource, stderr_tail
from opslab.telemetry import AgentRunIn, BatchItemResult, BatchResult


def make_run(tmp_path: Path, n: int) -> TrialSource:
    run_dir = tmp_path / "run_20260101_000000_beef"
    for i in range(1, n + 1):
        tdir = run_dir / "trials" / f"trial_{i}"
        (tdir / "out").mkdir(parents=True)
        rec = TrialRecord(
            trial_id=f"trial_{i}",
            variant_id="v",
            task_id=f"t{i}",
            replication=1,
            seed=i,
            outcome="error" if i % 2 else "success",
            error="harness exited with code 1" if i % 2 else None,
            exit_code=1 if i % 2 else 0,
            duration_ms=10.0,
        )
        (tdir / "trial_output.json").write_text(rec.model_dump_json())
        (tdir / "out" / "harness_events.jsonl").write_text('{"type": "step", "name": "think"}\nnot json\n')
        (tdir / "out" / "stderr.log").write_text("noise\n" * 2000 + "ValueError: bad input\n")
    return TrialSource(run_dir=run_dir, experiment_id="exp", harness_command=["./h"], bindings={"v": {}})


class Collect:
    def __init__(self) -> None:
        self.runs: list[AgentRunIn] = []

    def report(self, run: AgentRunIn) -> None:
        self.runs.append(run)


class Down:
    def __init__(self) -> None:
        self.calls = 0

    def report(self, run: AgentRunIn) -> None:
        self.calls += 1
        raise Unavailable("cannot reach the service at http://127.0.0.1:9: connection refused")


def submit_all(q: ReportQueue, n: int) -> None:
    for i in range(1, n + 1):
        q.submit(TrialDone(f"trial_{i}", "success"))


def test_every_finished_trial_is_reported_once_from_its_files(tmp_path: Path) -> None:
    sink = Collect()
    q = ReportQueue(sink, make_run(tmp_path, 5))
    submit_all(q, 5)
    tally = q.close()
    assert (tally.reported, tally.failures, tally.error) == (5, 0, None)
    assert sorted(r.run_id for r in sink.runs) == [f"run_20260101_000000_beef.trial_{i}" for i in range(1, 6)]
    crashed = next(r for r in sink.runs if r.run_id.endswith("trial_1"))
    assert crashed.status == "failure" and crashed.steps[1].name == "step think"
    assert "ValueError: bad input" in (crashed.steps[0].output_summary or "")


def test_a_dead_service_is_given_up_on_and_every_trial_counted(tmp_path: Path) -> None:
    down = Down()
    q = ReportQueue(down, make_run(tmp_path, 8))
    submit_all(q, 8)
    tally = q.close()
    assert down.calls == GIVE_UP_AFTER
    assert (tally.reported, tally.failures) == (0, 8)
    assert tally.error is not None and "connection refused" in tally.error


def test_no_reporter_means_reporting_is_off_and_a_broken_one_is_counted(tmp_path: Path) -> None:
    trials = make_run(tmp_path, 3)
    q = ReportQueue(lambda: None, trials)
    submit_all(q, 3)
    assert (q.close().reported, q.close().failures) == (0, 0)

    def broken() -> Collect:
        raise InvalidInput.for_field("--url", "no service URL")

    q = ReportQueue(broken, trials)
    submit_all(q, 3)
    tally = q.close()
    assert (tally.reported, tally.failures) == (0, 3) and "no service URL" in (tally.error or "")


class Ingest:
    """The service's ingest as a fake: refuses runs of odd trials in batches; too large over 2 at once."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.single: list[str] = []

    def ingest_run(self, run: AgentRunIn, /) -> object:
        self.single.append(run.run_id)
        return None

    def ingest_batch(self, runs: Sequence[AgentRunIn], /) -> BatchResult:
        if len(runs) > 4:
            raise PayloadTooLarge("body over the limit")
        self.batches.append(len(runs))
        results = [
            BatchItemResult(index=i, run_id=r.run_id, status="created")
            if r.status == "success"
            else BatchItemResult(index=i, run_id=r.run_id, status="error", error={"message": "refused"})
            for i, r in enumerate(runs)
        ]
        failed = sum(1 for r in results if r.status == "error")
        return BatchResult(ok=len(runs) - failed, failed=failed, results=results)


def test_batches_go_in_one_call_and_refusals_are_counted(tmp_path: Path) -> None:
    ingest, gate = Ingest(), threading.Event()

    def connect() -> IngestReporter:
        gate.wait(10)  # every trial is queued before the first batch is taken
        return IngestReporter(ingest)

    q = ReportQueue(connect, make_run(tmp_path, 4))
    submit_all(q, 4)
    gate.set()
    tally = q.close()
    assert ingest.batches == [4] and (tally.reported, tally.failures, tally.error) == (2, 2, "refused")


def test_a_batch_too_large_for_the_service_goes_one_by_one(tmp_path: Path) -> None:
    ingest, gate = Ingest(), threading.Event()

    def connect() -> IngestReporter:
        gate.wait(10)
        return IngestReporter(ingest)

    q = ReportQueue(connect, make_run(tmp_path, 6))
    submit_all(q, 6)
    gate.set()
    tally = q.close()
    assert ingest.batches == [] and len(ingest.single) == 6 and tally.reported == 6


def test_the_stderr_tail_is_the_end_of_the_log_and_never_a_link(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    log = tmp_path / "out" / "stderr.log"
    log.write_text("first line\n" + "x" * 5000 + "\nlast line\n")
    assert stderr_tail(tmp_path).endswith("last line") and "first line" not in stderr_tail(tmp_path)
    log.write_text("short\n")
    assert stderr_tail(tmp_path) == "short" and stderr_tail(tmp_path / "missing") == ""
    host = tmp_path / "host-secret.txt"
    host.write_text("HOST-ONLY")
    log.unlink()
    log.symlink_to(host)
    assert stderr_tail(tmp_path) == ""
