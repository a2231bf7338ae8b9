"""The run's commit log: what a resume takes as finished after a kill -9 or a crash of the machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opslab.errors import OperationFailed
from opslab.lab.commit import LOG_FILE, RecordLog, logged, reconcile


def record(trial_id: str, outcome: str = "success") -> str:
    return json.dumps(
        {
            "schema_version": 1,
            "trial_id": trial_id,
            "variant_id": "v",
            "task_id": "t",
            "replication": 1,
            "seed": 7,
            "outcome": outcome,
        },
        separators=(",", ":"),
    )


def finish(run_dir: Path, trial_id: str, text: str | None = None) -> Path:
    """A trial's record as a worker leaves it (the runner writes one compact line and a newline)."""
    path = run_dir / "trials" / trial_id / "trial_output.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((text if text is not None else record(trial_id)) + "\n")
    return path


def test_committed_records_are_in_the_log_as_their_files_hold_them(tmp_path: Path) -> None:
    for t in ("trial_1", "trial_2"):
        finish(tmp_path, t)
    with RecordLog(tmp_path) as log:
        log.commit(["trial_1", "trial_2"])
        log.commit([])
    assert logged(tmp_path) == {t: (record(t) + "\n").encode() for t in ("trial_1", "trial_2")}


def test_records_a_pool_hands_over_are_logged_as_handed_and_a_lost_file_comes_back_from_the_log(
    tmp_path: Path,
) -> None:
    finish(tmp_path, "trial_2")
    handed = (record("trial_1") + "\n").encode()  # as the worker wrote its file (gone by now)
    with RecordLog(tmp_path) as log:
        log.commit(["trial_1", "trial_2"], {"trial_1": handed})
    assert logged(tmp_path) == {"trial_1": handed, "trial_2": (record("trial_2") + "\n").encode()}
    done = reconcile(tmp_path, ["trial_1", "trial_2", "trial_3"])
    assert set(done) == {"trial_1", "trial_2"}
    assert (tmp_path / "trials" / "trial_1" / "trial_output.json").read_bytes() == handed


def test_a_record_the_runner_cannot_read_stops_the_run_naming_the_trial(tmp_path: Path) -> None:
    with RecordLog(tmp_path) as log, pytest.raises(OperationFailed, match="trial_9"):
        log.commit(["trial_9"])


def test_after_a_kill_a_whole_record_counts_and_is_committed_a_missing_or_torn_one_runs_again(
    tmp_path: Path,
) -> None:
    finish(tmp_path, "trial_1")  # finished before the kill, never committed
    finish(tmp_path, "trial_2", '{"schema_version":1,"trial_id":"trial_2","outc')  # torn
    (tmp_path / "trials" / "trial_3").mkdir()  # started, no record
    finish(tmp_path, "trial_4", record("trial_5"))  # another trial's record is not this one's
    done = reconcile(tmp_path, ["trial_1", "trial_2", "trial_3", "trial_4", "trial_5"])
    assert set(done) == {"trial_1"}
    assert set(logged(tmp_path)) == {"trial_1"}


def test_after_a_crash_of_the_machine_a_committed_record_lost_or_torn_is_written_back(tmp_path: Path) -> None:
    paths = {t: finish(tmp_path, t) for t in ("trial_1", "trial_2", "trial_3")}
    with RecordLog(tmp_path) as log:
        log.commit(["trial_1", "trial_2", "trial_3"])
    paths["trial_1"].unlink()
    paths["trial_2"].write_bytes(b"\0" * 40)  # the size made it to disk, the data did not
    paths["trial_3"].parent.rename(tmp_path / "trials" / "gone")
    done = reconcile(tmp_path, ["trial_1", "trial_2", "trial_3"])
    assert set(done) == {"trial_1", "trial_2", "trial_3"}
    for t, path in paths.items():
        assert json.loads(path.read_text()) == json.loads(record(t))


def test_a_log_line_a_crash_cut_short_is_ignored_and_the_last_line_of_a_trial_wins(tmp_path: Path) -> None:
    first, retried = record("trial_1", "error"), record("trial_1", "success")
    (tmp_path / LOG_FILE).write_text(f"{first}\n{retried}\n{record('trial_2')[:30]}")
    assert logged(tmp_path) == {"trial_1": (retried + "\n").encode()}


def test_a_retried_record_newer_than_its_logged_one_is_kept(tmp_path: Path) -> None:
    finish(tmp_path, "trial_1", record("trial_1", "error"))
    with RecordLog(tmp_path) as log:
        log.commit(["trial_1"])
    finish(tmp_path, "trial_1", record("trial_1", "success"))  # the retry finished, then a kill -9
    done = reconcile(tmp_path, ["trial_1"])
    assert json.loads(done["trial_1"])["outcome"] == "success"
    assert json.loads(logged(tmp_path)["trial_1"])["outcome"] == "success"
