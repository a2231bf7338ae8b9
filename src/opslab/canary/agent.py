"""The LabOps agent: Plan → Execute (ABAB, open-loop load) → Judge → Apply (PASS only) → Report.

Safe by construction: a health gate before anything changes; flags restored to A after the windows
(and on early stop, target failure, cancellation); a partial report when the time budget or a
Ctrl-C cuts the run short; every run appended to the history.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from opslab.canary.execute import (
    CanaryProgress,
    RunContext,
    WindowRunner,
    execute_load,
    quiet,
    read_target_report,
)
from opslab.canary.history import HistoryRecord, append_history
from opslab.canary.loadgen import measure
from opslab.canary.model import CanaryResult, DryRun, Flags, Outcome
from opslab.canary.plan import Plan
from opslab.canary.summary import render_mini, render_summary
from opslab.canary.target import TargetClient, unhealthy
from opslab.errors import OpslabError

SUMMARY = "LABOPS_AGENT_SUMMARY.txt"
MINI = "LAB_COMBO_REPORT_MINI.txt"
DEFERRED = "flags are applied only after a confirmation run"


def run_canary(
    plan: Plan,
    target: TargetClient,
    *,
    reports_dir: Path,
    history_path: Path,
    progress: CanaryProgress = quiet,
    cancel: threading.Event | None = None,
    window: WindowRunner = measure,
    clock: Callable[[], float] = time.monotonic,
    apply_on_pass: bool = True,
    sweep_trial: int | None = None,
    sweep_confirmation_of: int | None = None,
) -> CanaryResult:
    """One canary. ``apply_on_pass=False`` judges without applying (a sweep's trial: only its confirmation
    run may apply); the sweep labels are recorded with the run in the history. The time budget counts on
    ``clock`` from the call."""
    ctx = RunContext(cancel=cancel or threading.Event(), progress=progress, window=window, clock=clock)
    started_at = datetime.now(UTC)
    e = plan.experiment
    progress("Plan", 5, f"{e.rounds} ABAB round(s) of {e.window_sec:g}s at {e.qps:g} QPS")

    def result(outcome: Outcome, previous: Flags, *, blocked: bool = False) -> CanaryResult:
        return CanaryResult(
            **dict(outcome),
            started_at=started_at,
            candidate_flags=plan.candidate_flags(),
            previous_flags=previous,
            blocked=blocked,
            sweep_trial=sweep_trial,
            sweep_confirmation_of=sweep_confirmation_of,
        )

    try:
        health = target.health()
        previous = target.get_flags()
    except OpslabError as exc:
        unreachable = Outcome(decision="FAIL", reason=f"target unreachable: {exc.message}")
        return _report(plan, result(unreachable, {}, blocked=True), reports_dir, history_path)
    bad = unhealthy(health)
    if bad:
        reason = f"health gate: unhealthy dependencies {', '.join(bad)}; nothing ran"
        gated = result(Outcome(decision="FAIL", reason=reason), previous, blocked=True)
        return _report(plan, gated, reports_dir, history_path)
    if plan.mode == "report":
        outcome = read_target_report(plan, target, ctx)
    else:
        outcome = execute_load(plan, target, previous, ctx)
    done = _apply(plan, target, result(outcome.settled(), previous), apply_on_pass)
    progress("Report", 97, done.decision)
    return _report(plan, done, reports_dir, history_path)


def run_experiment(plan: Plan, target: TargetClient, *, ctx: RunContext | None = None) -> CanaryResult:
    """Execute and Judge only — ABAB windows of open-loop load against ``target``, A restored after — for
    a target that runs the experiment on itself (the sandbox's own lab). No health gate, no apply, no
    report files, no history."""
    ctx = ctx or RunContext()
    started_at = datetime.now(UTC)
    previous = target.get_flags()
    outcome = execute_load(plan, target, previous, ctx).settled()
    return CanaryResult(
        **dict(outcome),
        started_at=started_at,
        finished_at=datetime.now(UTC),
        candidate_flags=plan.candidate_flags(),
        previous_flags=previous,
    )


def dry_run(plan: Plan, reports_dir: Path) -> DryRun:
    """The plan and what a run would do, step by step; nothing is sent and nothing changed."""
    e, t = plan.experiment, plan.target
    if plan.mode == "load":
        execute = [
            f"run {e.rounds} ABAB round(s) of {e.window_sec:g}s at {e.qps:g} QPS on {t.request_path}",
            "restore A, judge ΔP95 / error rate",
        ]
    else:
        start = [f"POST {t.experiment_path} (the target runs the ABAB)"] if t.experiment_path else []
        execute = [*start, f"read ΔP95, ΔQPS, Err% from {t.report_path}"]
    return DryRun(
        started_at=datetime.now(UTC),
        mode=plan.mode,
        target=t.base_url,
        candidate_flags=plan.candidate_flags(),
        windows=2 * e.rounds,
        window_sec=e.window_sec,
        qps=e.qps,
        planned_seconds=plan.planned_seconds(),
        time_budget=plan.time_budget,
        thresholds=plan.thresholds,
        would=[
            f"check health at {t.health_path}",
            "read the current flags (A)",
            *execute,
            "apply B only on PASS",
            f"write {reports_dir}/{SUMMARY} and {MINI}",
        ],
    )


def _apply(plan: Plan, target: TargetClient, result: CanaryResult, apply_on_pass: bool) -> CanaryResult:
    """B is applied on a PASS only, and never when A could not be restored (the target is in doubt)."""
    if result.decision != "PASS" or result.restore_failed:
        return result
    if not apply_on_pass:
        return result.model_copy(update={"apply_deferred": DEFERRED})
    try:
        target.set_flags(plan.candidate_flags())
    except OpslabError as exc:
        warning = f"could not apply flags: {exc.message}"
        return result.model_copy(update={"warnings": [*result.warnings, warning]})
    return result.model_copy(update={"applied": True})


def _report(plan: Plan, result: CanaryResult, reports_dir: Path, history_path: Path) -> CanaryResult:
    reports_dir.mkdir(parents=True, exist_ok=True)
    result = result.model_copy(
        update={"finished_at": datetime.now(UTC), "summary_path": str(reports_dir / SUMMARY)}
    )
    (reports_dir / SUMMARY).write_text(render_summary(plan, result))
    (reports_dir / MINI).write_text(render_mini(result))
    append_history(history_path, HistoryRecord.of_run(result, plan.experiment))
    return result
