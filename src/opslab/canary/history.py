"""A canary run on the wire and in the append-only history: one flat object (``RunRecord``) — the job's
result, what ``opslab canary run --json`` prints — and one history line (``HistoryRecord``: the same plus
``schema_version`` and the plan's ``experiment``), appended with one ``write()`` on an ``O_APPEND``
descriptor and fsynced, never rewritten, so concurrent runs never interleave a line.

History versions, both read:

- **1** (before typed results): only the keys a run set (a blocked run had no ``warnings`` or
  ``error_rate_pct``; only a report-mode run had ``source``); a run without windows had ``error_rate_pct``
  0.0.
- **2**: every key, ``null`` where it does not apply; ``source`` says where the numbers came from.
- **3**: adds ``decision: INTERRUPTED`` (a signal stopped the run; A restored), ``interrupted`` (why),
  ``source: prometheus``, the custom ``metrics``, ``target_verdict`` / ``our_verdict`` (report mode), and
  ``load_check_decision`` / ``load_check_delta_p95_pct`` (Prometheus judged while our load also ran).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from opslab.canary.model import CanaryResult, Final, Flags, MetricResult, Source, Verdict, WindowSummary
from opslab.canary.plan import Experiment

SCHEMA_VERSION: Literal[3] = 3


def _finite(value: object) -> object:
    """NaN and infinities (an undefined statistic; a number a target sent as ``1e999``) are ``null`` on the
    wire: JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple | list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class RunRecord(BaseModel):
    # Keys a later version adds do not stop an older reader.
    model_config = ConfigDict(extra="ignore")

    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    dry_run: bool = False
    decision: Final
    reason: str
    measured: bool = False
    source: Source | None = None
    candidate_flags: Flags
    previous_flags: Flags = Field(default_factory=dict)
    applied: bool = False
    apply_deferred: str | None = None
    blocked: bool = False
    partial: str | None = None
    early_stop: str | None = None
    restore_failed: bool = False
    interrupted: str | None = None
    warnings: list[str] = Field(default_factory=list)
    metrics: list[MetricResult] = Field(default_factory=list)
    target_verdict: Verdict | None = None
    our_verdict: Verdict | None = None
    load_check_decision: Verdict | None = None
    load_check_delta_p95_pct: float | None = None
    delta_p95_pct: float | None = None
    delta_p95_ci: tuple[float | None, float | None] | None = None
    delta_qps_pct: float | None = None
    delta_qps_ci: tuple[float | None, float | None] | None = None
    error_rate_pct: float | None = None
    error_rate_a_pct: float | None = None
    ab_imbalance_pct: float | None = None
    srm_p: float | None = None
    p95_a_ms: float | None = None
    p95_b_ms: float | None = None
    qps_a: float | None = None
    qps_b: float | None = None
    samples: tuple[int, int] | None = None
    mw_p: float | None = None
    hl_shift_ms: float | None = None
    report_text: str | None = None
    summary_path: str | None = None
    sweep_trial: int | None = None
    sweep_confirmation_of: int | None = None
    windows: list[WindowSummary] = Field(default_factory=list)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nan(cls, value: object) -> object:
        return _finite(value)

    @classmethod
    def of(cls, result: CanaryResult) -> RunRecord:
        return cls.model_validate(_fields(result))


class HistoryRecord(RunRecord):
    """One line of ``history.jsonl``."""

    schema_version: Literal[1, 2, 3] = SCHEMA_VERSION
    experiment: Experiment | None = None

    @classmethod
    def of_run(cls, result: CanaryResult, experiment: Experiment) -> HistoryRecord:
        return cls.model_validate({**_fields(result), "experiment": experiment})

    def line(self) -> str:
        body = self.model_dump(mode="json", exclude={"schema_version"})
        return _dumps({"schema_version": self.schema_version, **body})


def _dumps(data: dict[str, object]) -> str:
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


def _fields(r: CanaryResult) -> dict[str, object]:
    j = r.judgement
    return {
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "candidate_flags": r.candidate_flags,
        "previous_flags": r.previous_flags,
        "decision": r.decision,
        "reason": r.reason,
        "measured": r.measured,
        "source": r.source,
        "applied": r.applied,
        "apply_deferred": r.apply_deferred,
        "blocked": r.blocked,
        "partial": r.partial,
        "early_stop": r.early_stop,
        "restore_failed": r.restore_failed,
        "interrupted": r.interrupted,
        "warnings": r.warnings,
        "metrics": r.metrics,
        "target_verdict": r.target_verdict,
        "our_verdict": r.our_verdict,
        "load_check_decision": r.load_check.decision if r.load_check else None,
        "load_check_delta_p95_pct": r.load_check.delta_p95_pct if r.load_check else None,
        "delta_p95_pct": r.delta_p95_pct,
        "delta_p95_ci": j.delta_p95_ci if j else None,
        "delta_qps_pct": r.delta_qps_pct,
        "delta_qps_ci": j.delta_qps_ci if j else None,
        "error_rate_pct": r.error_rate_pct,
        "error_rate_a_pct": j.error_rate_a_pct if j else None,
        "ab_imbalance_pct": r.ab_imbalance_pct,
        "srm_p": r.srm_p,
        "p95_a_ms": j.p95_a_ms if j else None,
        "p95_b_ms": j.p95_b_ms if j else None,
        "qps_a": j.qps_a if j else None,
        "qps_b": j.qps_b if j else None,
        "samples": r.samples,
        "mw_p": j.mw_p if j else None,
        "hl_shift_ms": j.hl_shift_ms if j else None,
        "report_text": r.report.text if r.report else None,
        "summary_path": r.summary_path,
        "sweep_trial": r.sweep_trial,
        "sweep_confirmation_of": r.sweep_confirmation_of,
        "windows": r.windows,
    }


# Where a history line is indexed beside the file (the database: every replica lists it): (target, line).
HistoryIndex = Callable[[str, HistoryRecord], None]


def append_history(path: Path, record: HistoryRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (record.line() + "\n").encode()
    # One write() of the whole line on an O_APPEND descriptor: concurrent runs never interleave a line.
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # after a torn last line (a crash mid-write): start a line of our own
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_history(path: Path) -> list[HistoryRecord]:
    """Every run, oldest first; lines of schema version 1 and 2 alike. A torn last line (a crash mid-write)
    or a line this version cannot read is skipped, never rewritten."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            out.append(HistoryRecord.model_validate(json.loads(line)))
        except ValueError:  # not JSON, or not a record (pydantic's ValidationError is a ValueError)
            continue
    return out
