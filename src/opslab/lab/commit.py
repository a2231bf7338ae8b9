"""The run's commit log, ``RUN_DIR/records.jsonl``: every finished trial's record, exactly as its
``trials/<id>/trial_output.json`` holds it, one per line, appended by the runner in batches and made
durable with one ``fdatasync`` per batch — a group commit — instead of one ``fsync`` per record (which
cost a trial of a no-op harness a quarter of the runner's own time).

Who promises what:

- a pool worker writes ``trial_output.json`` atomically (temp file + rename) without syncing it: a
  ``kill -9`` of the runner, of its workers or of both leaves it whole or absent, never half-written (the
  page cache outlives the processes);
- the runner appends each batch of finished trials to the log and syncs it *before* it counts, shows or
  reports any of them: a trial the runner has reported done survives a crash of the machine too;
- a resume (``reconcile``) takes as done every trial whose record is whole — a record missing or torn by
  a crash of the machine is written back from the log first — and commits those it finds outside the log
  (finished before a ``kill -9``, after the last commit). Every other trial runs again.

A line a crash cut short is ignored; a trial logged twice (``--retry-errors``) counts as its last line.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import ValidationError

from opslab.errors import OperationFailed
from opslab.lab.artifacts import canonical_json, write_text
from opslab.lab.records import TrialRecord

LOG_FILE = "records.jsonl"
RECORD = "trial_output.json"


class RecordLog:
    """The run's log, open for appending while a runner holds the run (``own_run``)."""

    def __init__(self, run_dir: Path) -> None:
        self.trials_dir = os.path.join(run_dir, "trials")
        self._fd = os.open(run_dir / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def commit(self, trial_ids: Iterable[str], written: Mapping[str, bytes] | None = None) -> None:
        """Append the records of ``trial_ids`` (finished: their files are written) and sync once.
        ``written``: records whose files' bytes the caller has (a pool's worker sent them), not read
        back."""
        lines = []
        for trial_id in trial_ids:
            try:
                raw = written.get(trial_id) if written else None
                if raw is None:
                    raw = _read(os.path.join(self.trials_dir, trial_id, RECORD))
                lines.append(_one_line(raw))
            except OSError as exc:  # only a harness that deletes the runner's files gets here
                raise OperationFailed(
                    f"the runner failed on trial {trial_id}: its record cannot be read ({exc}); "
                    "fix the cause and continue with --resume",
                    details={"trial_id": trial_id},
                ) from None
        if not lines:
            return
        data = memoryview(b"".join(lines))
        while data:
            data = data[os.write(self._fd, data) :]
        os.fdatasync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WrittenRecords(dict[str, bytes]):
    """The records a runner was handed, by trial id, as their files hold them (the analysis reads only
    the others back), each with its canonical JSON for the attestation's digest, made as it came in
    (while the trials ran) rather than all at once after the last."""

    def __init__(self) -> None:
        super().__init__()
        self.canonical: dict[str, str] = {}

    def add(self, trial_id: str, raw: bytes) -> None:
        self[trial_id] = raw
        self.canonical[trial_id] = canonical_json(json.loads(raw))


def logged(run_dir: Path) -> dict[str, bytes]:
    """The records in the log by trial id (the last line of each), each as its file holds it."""
    try:
        with open(run_dir / LOG_FILE, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    records: dict[str, bytes] = {}
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # the tail of a write a crash cut short
        try:
            trial_id = json.loads(line)["trial_id"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(trial_id, str):
            records[trial_id] = line
    return records


def reconcile(run_dir: Path, trial_ids: Iterable[str]) -> dict[str, bytes]:
    """The finished trials among ``trial_ids`` and their records (see the module docstring): whole
    records are kept (and logged when the log lacks them), lost or torn ones restored from the log."""
    trials_dir = run_dir / "trials"
    try:
        present = set(os.listdir(trials_dir))
    except FileNotFoundError:
        present = set()
    log = logged(run_dir)
    done: dict[str, bytes] = {}
    unlogged: list[str] = []
    for trial_id in trial_ids:
        if trial_id not in present and trial_id not in log:
            continue
        path = trials_dir / trial_id / RECORD
        try:
            raw = _one_line(path.read_bytes())
        except OSError:
            raw = None
        if raw is not None and (raw == log.get(trial_id) or _whole(raw, trial_id)):
            done[trial_id] = raw
            if raw != log.get(trial_id):
                unlogged.append(trial_id)
        elif trial_id in log:  # lost or torn by a crash of the machine after it was committed
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, log[trial_id].decode().rstrip("\n"), durable=True)
            done[trial_id] = log[trial_id]
    if unlogged:
        with contextlib.closing(RecordLog(run_dir)) as records:
            records.commit(unlogged)
    return done


def _whole(raw: bytes, trial_id: str) -> bool:
    try:
        return TrialRecord.model_validate_json(raw).trial_id == trial_id
    except (ValidationError, ValueError):
        return False


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _one_line(raw: bytes) -> bytes:
    """A record as one log line: the compact JSON the runner writes, newline-terminated."""
    line = raw.strip()
    if b"\n" in line:  # not written by this runner (hand-edited?): compacted, the same record
        line = json.dumps(json.loads(line), separators=(",", ":")).encode()
    return line + b"\n"
