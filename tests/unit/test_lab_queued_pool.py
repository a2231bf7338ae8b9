"""The runner's side of queued trials, through a fake task queue: collection by trial id, a trial whose
worker was lost on every attempt recorded as an error with its attempt, a failed task stopping the run,
an interrupted runner cancelling its batch, and the lab job's progress line. (Retrying a lost task is the
work core's: tests/integration/test_job_runner.py and test_lab_rq_executor.py.)"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from opslab.errors import OperationFailed
from opslab.jobs import TaskEnd
from opslab.lab import LabProgress, Trial, TrialDone
from opslab.lab.job import PassRates
from opslab.lab.queued_pool import TRIAL_CALL, run_queued


class FakeBatch:
    """Tasks whose fate the test decides: ``ends`` answers them in order, ``running`` end when stopped."""

    def __init__(self, ends: list[TaskEnd], running: set[str] | None = None) -> None:
        self.ends = ends
        self.running = running or set()
        self.submitted: list[tuple[str, list[str]]] = []
        self.stopped = False

    def submit(self, items: Sequence[tuple[str, Sequence[str]]], call: str) -> None:
        assert call == TRIAL_CALL
        self.submitted.extend((task_id, list(args)) for task_id, args in items)

    def wait(self, timeout_s: float) -> list[TaskEnd]:
        out, self.ends = self.ends[:1], self.ends[1:]
        return out

    def stop(self) -> int:
        self.stopped = True
        # The workers kill the harnesses of the running trials: they end cancelled, with no result.
        self.ends.extend(TaskEnd(t, 1, error="cancelled: stopped") for t in sorted(self.running))
        return len(self.running)


class FakeQueue:
    def __init__(self, batch: FakeBatch) -> None:
        self._batch = batch

    def batch(self) -> FakeBatch:
        return self._batch

    def ready(self) -> None:
        return None


def trials(n: int) -> list[Trial]:
    return [
        Trial(
            trial_id=f"trial_{i}",
            index=i,
            variant_id="a" if i % 2 else "b",
            bindings={},
            task_id=f"t{i}",
            task={"task_id": f"t{i}"},
            replication=1,
            seed=i,
        )
        for i in range(1, n + 1)
    ]


def test_trials_are_collected_by_id_with_their_first_attempt_passed_on(tmp_path: Path) -> None:
    batch = FakeBatch(
        [
            TaskEnd("trial_3", 1, result="success"),
            TaskEnd("trial_1", 2, result="success"),
            TaskEnd("trial_2", 1, result="failure"),
        ]
    )
    done = list(run_queued(tmp_path, trials(3), {"trial_1": 1, "trial_2": 2, "trial_3": 1}, FakeQueue(batch)))
    assert sorted(done) == [
        TrialDone("trial_1", "success"),
        TrialDone("trial_2", "failure"),
        TrialDone("trial_3", "success"),
    ]
    assert ("trial_2", [str(tmp_path), "trial_2", "2"]) in batch.submitted and len(batch.submitted) == 3


def test_a_trial_lost_on_every_attempt_is_recorded_as_an_error_and_the_run_goes_on(tmp_path: Path) -> None:
    batch = FakeBatch(
        [
            TaskEnd("trial_1", 2, error="crashed: worker lost", lost=True),
            TaskEnd("trial_2", 1, result="success"),
        ]
    )
    done = list(run_queued(tmp_path, trials(2), {"trial_1": 1, "trial_2": 1}, FakeQueue(batch)))
    assert sorted(done) == [TrialDone("trial_1", "error"), TrialDone("trial_2", "success")]
    record = json.loads((tmp_path / "trials" / "trial_1" / "trial_output.json").read_text())
    assert record["outcome"] == "error" and record["attempt"] == 2 and "lost" in record["error"]


def test_a_task_that_raised_stops_the_run_naming_the_trial(tmp_path: Path) -> None:
    batch = FakeBatch([TaskEnd("trial_1", 1, error="failed: boom")])
    with pytest.raises(OperationFailed, match="trial_1: failed: boom"):
        list(run_queued(tmp_path, trials(2), {"trial_1": 1, "trial_2": 1}, FakeQueue(batch)))


def test_an_interrupted_runner_stops_the_running_trials_and_they_leave_no_record(tmp_path: Path) -> None:
    batch = FakeBatch([TaskEnd("trial_1", 1, result="success")], running={"trial_2"})
    for trial_id in ("trial_1", "trial_2"):
        (tmp_path / "trials" / trial_id).mkdir(parents=True)
    pool = run_queued(
        tmp_path, trials(3), dict.fromkeys(("trial_1", "trial_2", "trial_3"), 1), FakeQueue(batch)
    )
    assert next(pool) == TrialDone("trial_1", "success")
    pool.close()
    assert batch.stopped
    assert (tmp_path / "trials" / "trial_1").is_dir() and not (tmp_path / "trials" / "trial_2").exists()


class SlowWorkerBatch(FakeBatch):
    """A worker still writing into its trial's folder when the runner sees the task end (it was slow to
    stop, or the queue gave up on it): its writes land in the folder, if the folder is still there."""

    def __init__(self, folder: Path, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.folder = folder
        self.failed_writes = 0

    def wait(self, timeout_s: float) -> list[TaskEnd]:
        ends = super().wait(timeout_s)
        if self.stopped:
            try:
                (self.folder / "out" / "stdout.log").write_text("still writing\n")
                (self.folder / "trial_output.json").write_text('{"outcome": "error"}\n')
            except FileNotFoundError:
                self.failed_writes += 1
        return ends


def test_a_stopped_trial_leaves_no_folder_even_when_its_worker_writes_on(tmp_path: Path) -> None:
    trials_dir = tmp_path / "trials"
    batch = SlowWorkerBatch(
        trials_dir / "trial_1", ends=[TaskEnd("trial_3", 1, result="success")], running={"trial_1", "trial_2"}
    )
    (trials_dir / "trial_1" / "out").mkdir(parents=True)
    (trials_dir / "trial_2").mkdir()
    (trials_dir / "trial_2" / "trial_output.json").write_text('{"outcome": "success"}\n')  # just finished
    (trials_dir / "trial_3").mkdir()
    ids = ("trial_1", "trial_2", "trial_3")
    pool = run_queued(tmp_path, trials(3), dict.fromkeys(ids, 1), FakeQueue(batch))
    assert next(pool) == TrialDone("trial_3", "success")
    pool.close()  # the runner interrupted
    assert batch.stopped and batch.failed_writes >= 1
    assert not (trials_dir / "trial_1").exists()
    # A record written before the stop stands (its trial is not run again on --resume); no attic is left.
    assert sorted(p.name for p in trials_dir.iterdir()) == ["trial_2", "trial_3"]


def test_the_lab_jobs_progress_says_trials_done_and_pass_rates() -> None:
    reports: list[tuple[str, float, str | None]] = []
    variant_of = {t.trial_id: t.variant_id for t in trials(4)}
    meter = PassRates(variant_of, ["b", "a"], lambda step, pct, msg: reports.append((step, pct, msg)))
    for i, outcome in enumerate(("success", "failure", "success", "success"), start=1):
        meter(LabProgress(i, 0, 4, "", TrialDone(f"trial_{i}", outcome)))  # type: ignore[arg-type]
    assert reports[-1] == ("Running trials", 95.0, "4/4 trials done; pass rate b 50% (1/2), a 100% (2/2)")
