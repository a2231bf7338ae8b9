"""The LabOps agent: Plan → Execute (ABAB, open-loop load) → Judge → Apply (PASS only) → Report.

Safe by construction: a health gate before anything changes; flags restored to A after the windows
(and on early stop, target failure, cancellation); a partial report when the time budget or a
Ctrl-C cuts the run short; every run appended to the history.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from opslab.canary import history
from opslab.canary.execute import Progress, WindowRunner, execute_load, read_target_report
from opslab.canary.loadgen import run_window
from opslab.canary.plan import Plan
from opslab.canary.summary import render_mini, render_summary
from opslab.canary.target import TargetClient, unhealthy
from opslab.errors import OpslabError

SUMMARY = "LABOPS_AGENT_SUMMARY.txt"
MINI = "LAB_COMBO_REPORT_MINI.txt"


def _quiet(step: str, pct: float, message: str) -> None:
    return None


def run_canary(
    plan: Plan,
    target: TargetClient,
    *,
    reports_dir: Path,
    history_path: Path,
    dry_run: bool = False,
    progress: Progress = _quiet,
    cancel: threading.Event | None = None,
    window: WindowRunner = run_window,
    apply_on_pass: bool = True,
    labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One canary. ``apply_on_pass=False`` judges without applying (a sweep's trial: only its confirmation
    run may apply); ``labels`` are recorded with the run in the history."""
    cancel = cancel or threading.Event()
    started = time.monotonic()
    candidate = plan.candidate_flags()
    result: dict[str, Any] = {
        **(labels or {}),
        "started_at": datetime.now(UTC).isoformat(),
        "plan": plan.model_dump(),
        "candidate_flags": candidate,
        "applied": False,
        "dry_run": dry_run,
    }
    progress(
        "Plan",
        5,
        f"{plan.experiment.rounds} ABAB round(s) of {plan.experiment.window_sec:g}s at "
        f"{plan.experiment.qps:g} QPS",
    )
    if dry_run:
        result.update(
            decision="DRY-RUN",
            reason="dry run: no load sent, no flag changed",
            windows=2 * plan.experiment.rounds,
            planned_seconds=plan.planned_seconds(),
        )
        return result
    try:
        health = target.health()
        previous = target.get_flags()
    except OpslabError as exc:
        return _finish(
            plan,
            result
            | {
                "decision": "FAIL",
                "reason": f"target unreachable: {exc.message}",
                "previous_flags": {},
                "measured": False,
                "blocked": True,
            },
            reports_dir,
            history_path,
        )
    result["previous_flags"] = previous
    bad = unhealthy(health)
    if bad:
        result.update(
            decision="FAIL",
            reason=f"health gate: unhealthy dependencies {', '.join(bad)}; nothing ran",
            blocked=True,
            measured=False,
        )
        return _finish(plan, result, reports_dir, history_path)
    if plan.mode == "report":
        result.update(read_target_report(plan, target, candidate, cancel, started, progress))
    else:
        execute_load(plan, target, candidate, previous, result, started, cancel, progress, window)
    if result.get("early_stop"):
        result.update(decision="FAIL", reason=f"early stop: {result['early_stop']}")
    elif result.get("partial") and result["decision"] == "PASS":
        result.update(decision="EDGE", reason=f"inconclusive (partial run): {result['reason']}")
    if result["decision"] == "PASS" and not apply_on_pass:
        result["apply_deferred"] = "flags are applied only after a confirmation run"
    elif result["decision"] == "PASS" and not result.get("restore_failed"):
        try:
            target.set_flags(candidate)
            result["applied"] = True
        except OpslabError as exc:
            result["warnings"] = [*result.get("warnings", []), f"could not apply flags: {exc.message}"]
    progress("Report", 97, result["decision"])
    return _finish(plan, result, reports_dir, history_path)


def _finish(plan: Plan, result: dict[str, Any], reports_dir: Path, history_path: Path) -> dict[str, Any]:
    result["finished_at"] = datetime.now(UTC).isoformat()
    reports_dir.mkdir(parents=True, exist_ok=True)
    result.setdefault("previous_flags", {})
    (reports_dir / SUMMARY).write_text(render_summary(plan, result))
    (reports_dir / MINI).write_text(render_mini(result))
    result["summary_path"] = str(reports_dir / SUMMARY)
    record = {k: v for k, v in result.items() if k not in ("plan",)}
    record["experiment"] = plan.experiment.model_dump()
    history.append(history_path, _plain(record))
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.floating | float):
        f = float(value)
        return None if f != f else f
    return value
