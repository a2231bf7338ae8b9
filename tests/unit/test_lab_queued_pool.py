"""The runner's side of queued trials, through a fake task queue: collection by trial id, a lost trial
retried once with the next attempt, a trial lost twice recorded as an error, a failed task stopping the
run, and the lab job's progress line."""

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
    """Tasks whose fate the test decides: ``finish`` answers them, ``lose`` marks them lost."""

    def __init__(self, *, finish: dict[str, str | None], lose: set[str]) -> None:
        self.finish, self.lose = finish, lose
        self.submitted: list[tuple[str, list[str]]] = []
        self.pending: list[str] = []
        self.closed: list[str] | None = None
        self.running: set[str] = set()
        self.stopped = False

    def submit(self, items: Sequence[tuple[str, Sequence[str]]], call: str, *, timeout_s: float) -> None:
        assert call == TRIAL_CALL and timeout_s == 5
        for task_id, args in items:
            self.submitted.append((task_id, list(args)))
            self.pending.append(task_id)

    def wait(self, timeout_s: float) -> list[TaskEnd]:
        ends = []
        for task_id in list(self.pending):
            if task_id in self.finish:
                self.pending.remove(task_id)
                outcome = self.finish[task_id]
                ends.append(TaskEnd(task_id, result=outcome, error=None if outcome else "boom"))
        return ends

    def lost(self, candidates: Sequence[str]) -> list[str]:
        gone = [t for t in candidates if t in self.lose]
        self.pending = [t for t in self.pending if t not in gone]
        return gone

    def started(self, candidates: Sequence[str]) -> list[str]:
        return [t for t in candidates if t in self.running]

    def stop(self) -> None:
        self.stopped = True
        for task_id in self.running:  # the workers kill the harnesses: the trials end at once
            self.finish[task_id] = "error"

    def close(self, unfinished: Sequence[str] = ()) -> None:
        self.closed = list(unfinished)


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


def test_trials_are_collected_by_id_and_a_lost_one_is_retried_once(tmp_path: Path) -> None:
    batch = FakeBatch(
        finish={"trial_1#1": "success", "trial_2#2": "failure", "trial_3#1": "success"}, lose={"trial_2#1"}
    )
    plan = trials(3)
    done = list(
        run_queued(
            tmp_path, plan, dict.fromkeys(("trial_1", "trial_2", "trial_3"), 1), FakeQueue(batch), timeout_s=5
        )
    )
    assert sorted(done) == [
        TrialDone("trial_1", "success"),
        TrialDone("trial_2", "failure"),
        TrialDone("trial_3", "success"),
    ]
    assert ("trial_2#2", [str(tmp_path), "trial_2", "2"]) in batch.submitted
    assert len(batch.submitted) == 4 and batch.closed == []


def test_a_trial_lost_twice_is_recorded_as_an_error_and_the_run_goes_on(tmp_path: Path) -> None:
    batch = FakeBatch(finish={"trial_2#1": "success"}, lose={"trial_1#1", "trial_1#2"})
    done = list(run_queued(tmp_path, trials(2), {"trial_1": 1, "trial_2": 1}, FakeQueue(batch), timeout_s=5))
    assert sorted(done) == [TrialDone("trial_1", "error"), TrialDone("trial_2", "success")]
    record = json.loads((tmp_path / "trials" / "trial_1" / "trial_output.json").read_text())
    assert record["outcome"] == "error" and record["attempt"] == 2 and "lost" in record["error"]


def test_a_task_that_raised_stops_the_run_naming_the_trial(tmp_path: Path) -> None:
    batch = FakeBatch(finish={"trial_1#1": None}, lose=set())
    with pytest.raises(OperationFailed, match="trial_1: boom"):
        list(run_queued(tmp_path, trials(2), {"trial_1": 1, "trial_2": 1}, FakeQueue(batch), timeout_s=5))
    assert batch.closed == ["trial_2#1"]  # what had not finished is cancelled


def test_an_interrupted_runner_stops_the_running_trials_and_they_leave_no_record(tmp_path: Path) -> None:
    batch = FakeBatch(finish={"trial_1#1": "success"}, lose=set())
    batch.running = {"trial_2#1"}
    for trial_id in ("trial_1", "trial_2"):
        (tmp_path / "trials" / trial_id).mkdir(parents=True)
    pool = run_queued(
        tmp_path,
        trials(3),
        dict.fromkeys(("trial_1", "trial_2", "trial_3"), 1),
        FakeQueue(batch),
        timeout_s=5,
    )
    assert next(pool) == TrialDone("trial_1", "success")
    pool.close()
    assert batch.stopped and batch.closed == ["trial_3#1"]
    assert (tmp_path / "trials" / "trial_1").is_dir() and not (tmp_path / "trials" / "trial_2").exists()


def test_the_lab_jobs_progress_says_trials_done_and_pass_rates() -> None:
    reports: list[tuple[str, float, str | None]] = []
    variant_of = {t.trial_id: t.variant_id for t in trials(4)}
    meter = PassRates(variant_of, ["b", "a"], lambda step, pct, msg: reports.append((step, pct, msg)))
    for i, outcome in enumerate(("success", "failure", "success", "success"), start=1):
        meter(LabProgress(i, 0, 4, "", TrialDone(f"trial_{i}", outcome)))  # type: ignore[arg-type]
    assert reports[-1] == ("Running trials", 95.0, "4/4 trials done; pass rate b 50% (1/2), a 100% (2/2)")
