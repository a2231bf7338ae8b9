"""What a canary writes and answers keeps its shape: history lines of schema version 1 (as ``history.append``
wrote them before typed results) still load, a new line is version 2 with every key, the job's result has
every key clients read, and a dry run is one typed answer for the CLI and the job."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opslab.canary import (
    SCHEMA_VERSION,
    CanaryResult,
    HistoryRecord,
    Judgement,
    RunRecord,
    append_history,
    canary_work,
    dry_run,
    parse_plan,
    read_history,
)
from opslab.config import Settings

V1 = Path(__file__).parents[1] / "fixtures" / "canary" / "history_v1.jsonl"
PLAN: dict[str, Any] = {
    "experiment": {
        "qps": 10.0,
        "window_sec": 120,
        "rounds": 2,
        "flow_policy": "aimd",
        "target_p95": 1200,
        "routing_mode": "rules",
        "topk_threshold": 32,
    },
}
# What GET /canary/runs/{id} clients read (the demo, the acceptance checks, the tests).
CLIENT_KEYS = {
    "decision",
    "reason",
    "delta_p95_pct",
    "delta_p95_ci",
    "error_rate_pct",
    "applied",
    "summary_path",
}


def test_history_lines_of_version_1_still_load(tmp_path: Path) -> None:
    rows = read_history(V1)
    assert [r.schema_version for r in rows] == [1] * 6
    measured, blocked, stopped, trial, report, unreachable = rows
    assert measured.decision == "PASS" and measured.applied and measured.samples == (540, 540)
    assert measured.delta_p95_ci is not None and measured.delta_p95_ci[1] is not None
    assert measured.experiment is not None and measured.experiment.topk_threshold == 20
    assert blocked.blocked and "qdrant" in blocked.reason and blocked.warnings == []
    assert stopped.early_stop == "target failed mid-run: target gone" and stopped.restore_failed
    assert trial.sweep_trial == 3 and trial.apply_deferred and not trial.applied
    assert report.source == "report" and report.report_text and report.delta_p95_pct == -20.0
    assert unreachable.reason.startswith("target unreachable") and unreachable.previous_flags == {}
    # Appending a v2 line to a v1 file leaves the old lines as they were, and both read.
    path = tmp_path / "history.jsonl"
    path.write_text(V1.read_text() + '{"schema_version": 1, "decision": "PA')  # a torn last line
    append_history(path, HistoryRecord.model_validate({**measured.model_dump(), "schema_version": 2}))
    assert path.read_text().startswith(V1.read_text())
    assert [r.schema_version for r in read_history(path)] == [1] * 6 + [2]


def test_every_version_1_key_is_still_on_the_wire() -> None:
    for line in V1.read_text().splitlines():
        keys = set(json.loads(line)) - {"schema_version", "experiment"}
        assert keys <= set(RunRecord.model_fields), keys - set(RunRecord.model_fields)


def test_a_result_on_the_wire_is_flat_json_without_nan() -> None:
    nan = float("nan")
    judgement = Judgement(
        measured=False,
        delta_p95_pct=nan,
        delta_p95_ci=(nan, nan),
        delta_qps_pct=0.0,
        delta_qps_ci=(0.0, 0.0),
        error_rate_pct=100.0,
        error_rate_a_pct=0.0,
        ab_imbalance_pct=0.0,
        srm_p=1.0,
        p95_a_ms=nan,
        p95_b_ms=nan,
        qps_a=10.0,
        qps_b=10.0,
        samples=(0, 0),
        mw_p=nan,
        hl_shift_ms=nan,
        decision="FAIL",
        reason="no successful requests in an arm",
    )
    result = CanaryResult(
        decision="FAIL",
        reason=judgement.reason,
        judgement=judgement,
        started_at=datetime.now(UTC),
        candidate_flags={"routing": {"mode": "rules"}},
    )
    wire = RunRecord.of(result).model_dump(mode="json")
    assert set(wire) >= CLIENT_KEYS and wire["delta_p95_pct"] is None and wire["delta_p95_ci"] == [None, None]
    json.dumps(wire, allow_nan=False)
    odd = result.model_copy(update={"previous_flags": {"control": {"target_p95": float("inf")}}})
    assert RunRecord.of(odd).previous_flags == {"control": {"target_p95": None}}  # a target sent 1e999
    line = HistoryRecord.of_run(result, parse_plan(PLAN).experiment).line()
    assert json.loads(line)["schema_version"] == SCHEMA_VERSION == 3


def test_a_dry_run_says_what_would_happen() -> None:
    d = dry_run(parse_plan(PLAN), Path("reports"))
    assert (d.decision, d.dry_run, d.applied, d.windows, d.planned_seconds) == (
        "DRY-RUN",
        True,
        False,
        4,
        480,
    )
    assert (
        d.would[0] == "check health at /api/lab/config" and "apply B only on PASS: POST /api/flags" in d.would
    )
    report = dry_run(parse_plan({**PLAN, "mode": "report"}), Path("reports"))
    assert any("/api/lab/report" in step for step in report.would)


class Deps:
    """The runtime as a job kind sees it; a canary needs only the settings."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(data_dir=data_dir)


class Context:
    """The ``WorkContext`` a runner would hand the work."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.job_id, self.attempt = "j1", 1
        self.stopping, self.cancelled = threading.Event(), threading.Event()

    def report(self, step: str, pct: float, message: str | None = None) -> None:
        self.steps.append(step)


def test_the_job_answers_a_dry_run_without_touching_the_target(tmp_path: Path) -> None:
    work = canary_work(Deps(tmp_path))  # type: ignore[arg-type]
    progress = Context()
    # The target's port is never opened: a dry run sends nothing.
    plan = {**PLAN, "target": {"base_url": "http://fake.invalid:1"}}
    out = work.execute({"plan": plan, "dry_run": True, "run_key": "k1"}, progress)
    assert out is not None
    assert out["decision"] == "DRY-RUN" and out["dry_run"] is True and out["applied"] is False
    assert out["candidate_flags"]["routing"] == {"mode": "rules", "topk_threshold": 32}
    assert out["windows"] == 4 and out["planned_seconds"] == 480 and progress.steps == ["Plan"]
    assert not (tmp_path / "canary").exists()
    json.dumps(out, allow_nan=False)
