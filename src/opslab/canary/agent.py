"""The LabOps agent: Plan → Execute (ABAB, open-loop load) → Judge → Apply (PASS only) → Report.

Safe by construction: a health gate before anything changes; flags restored to A and read back after
the windows (and on early stop, target failure, a signal); a partial report when the time budget cuts
the run short, an INTERRUPTED one when a signal does; every run appended to the history; the plan's
secrets masked in all of it; a webhook told of the verdict, an interruption, a failed restore.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import JsonValue

from opslab.canary.execute import (
    CanaryProgress,
    MetricsReader,
    RunContext,
    Stop,
    WindowRunner,
    execute_load,
    quiet,
)
from opslab.canary.history import HistoryIndex, HistoryRecord, append_history
from opslab.canary.loadgen import LiveWindow, measure
from opslab.canary.model import CanaryResult, DryRun, Flags, Outcome
from opslab.canary.notify import Event, send_webhook
from opslab.canary.plan import Plan
from opslab.canary.prometheus import PrometheusSource
from opslab.canary.report_mode import read_target_report
from opslab.canary.secrets import RunSecrets
from opslab.canary.summary import render_mini, render_summary, rollback_command
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
    index: HistoryIndex | None = None,
    progress: CanaryProgress = quiet,
    cancel: threading.Event | None = None,
    window: WindowRunner = measure,
    clock: Callable[[], float] = time.monotonic,
    apply_on_pass: bool = True,
    sweep_trial: int | None = None,
    sweep_confirmation_of: int | None = None,
    secrets: RunSecrets | None = None,
    metrics: MetricsReader | None = None,
    watch: Callable[[LiveWindow], None] | None = None,
) -> CanaryResult:
    """One canary. ``apply_on_pass=False`` judges without applying (a sweep's trial: only its confirmation
    run may apply); the sweep labels are recorded with the run in the history. The time budget counts on
    ``clock`` from the call. ``secrets``: the plan's resolved ``${ENV}`` values, masked in everything
    written. ``metrics``: what reads Prometheus (default: built from the plan when it names one)."""
    secrets = secrets or RunSecrets()
    own_reader = metrics is None and _needs_prometheus(plan)
    if own_reader:
        assert plan.metrics.prometheus is not None
        url = secrets.prometheus_url or plan.metrics.prometheus.url
        metrics = PrometheusSource(plan.metrics.prometheus, url=url, custom=plan.metrics.custom)
    try:
        return _run(
            plan,
            target,
            reports_dir=reports_dir,
            history_path=history_path,
            index=index,
            ctx=RunContext(
                cancel=cancel or Stop(),
                progress=lambda step, pct, msg: progress(step, pct, secrets.redact(msg)),
                window=window,
                metrics=metrics,
                watch=watch,
                clock=clock,
            ),
            secrets=secrets,
            apply_on_pass=apply_on_pass,
            sweep=(sweep_trial, sweep_confirmation_of),
        )
    finally:
        if own_reader and isinstance(metrics, PrometheusSource):
            metrics.close()


def _needs_prometheus(plan: Plan) -> bool:
    return plan.metrics.source == "prometheus" or any(m.query for m in plan.metrics.custom)


def _run(
    plan: Plan,
    target: TargetClient,
    *,
    reports_dir: Path,
    history_path: Path,
    index: HistoryIndex | None,
    ctx: RunContext,
    secrets: RunSecrets,
    apply_on_pass: bool,
    sweep: tuple[int | None, int | None],
) -> CanaryResult:
    started_at = datetime.now(UTC)
    e, progress = plan.experiment, ctx.progress
    progress("Plan", 5, f"{e.rounds} ABAB round(s) of {e.window_sec:g}s at {e.qps:g} QPS")

    def result(outcome: Outcome, previous: Flags, *, blocked: bool = False) -> CanaryResult:
        return CanaryResult(
            **dict(outcome),
            started_at=started_at,
            candidate_flags=plan.candidate_flags(),
            previous_flags=previous,
            blocked=blocked,
            sweep_trial=sweep[0],
            sweep_confirmation_of=sweep[1],
        )

    def report(r: CanaryResult) -> CanaryResult:
        notified = _notify(plan, r, secrets, reports_dir)
        return _report(plan, notified, reports_dir, history_path, secrets, index)

    try:
        health = target.health()
        previous = target.get_flags()
    except OpslabError as exc:
        unreachable = Outcome(decision="FAIL", reason=f"target unreachable: {exc.message}")
        return report(result(unreachable, {}, blocked=True))
    bad = unhealthy(health)
    if bad:
        reason = f"health gate: unhealthy dependencies {', '.join(bad)}; nothing ran"
        return report(result(Outcome(decision="FAIL", reason=reason), previous, blocked=True))
    if plan.mode == "report":
        outcome = read_target_report(plan, target, ctx)
    else:
        outcome = execute_load(plan, target, previous, ctx)
    done = _apply(plan, target, result(outcome.settled(), previous), apply_on_pass)
    progress("Report", 97, done.decision)
    return report(done)


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
        mix = ", ".join(r.label for r in t.mix())
        load = f"at {e.qps:g} QPS of {mix}" if plan.metrics.load else "on the service's own traffic"
        measured = "Prometheus" if plan.metrics.source == "prometheus" else "the load generator"
        execute = [
            f"run {e.rounds} ABAB round(s) of {e.window_sec:g}s {load}, measured by {measured}",
            "restore A and read it back, judge ΔP95 / error rate"
            + (f" and {len(plan.metrics.custom)} custom metric(s)" if plan.metrics.custom else ""),
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
            f"read the current flags (A): GET {t.flags_path}",
            *execute,
            f"apply B only on PASS: {t.flags_method} {t.flags_path}",
            f"write {reports_dir}/{SUMMARY} and {MINI}",
            *([f"notify {', '.join(plan.notify.on)} by webhook"] if plan.notify else []),
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


def _events(r: CanaryResult) -> list[Event]:
    if r.restore_failed:
        return ["restore_failed"]
    return ["interrupted"] if r.decision == "INTERRUPTED" else ["verdict"]


def _notify(plan: Plan, r: CanaryResult, secrets: RunSecrets, reports_dir: Path) -> CanaryResult:
    """Tell the webhook; a failed delivery is a warning, never a change of verdict."""
    if plan.notify is None or not secrets.webhook_url:
        return r
    warnings = []
    for event in _events(r):
        if event not in plan.notify.on:
            continue
        head = {
            "verdict": f"Canary {r.decision} on {plan.target.base_url}",
            "interrupted": f"Canary INTERRUPTED on {plan.target.base_url}; baseline flags restored",
            "restore_failed": f":rotating_light: Canary on {plan.target.base_url} could NOT restore the "
            "baseline flags",
        }[event]
        text = (
            f"{head}: {r.reason}. Applied: {'yes' if r.applied else 'no'}. Summary: {reports_dir / SUMMARY}"
        )
        if r.restore_failed:
            text += f"\nRollback: {rollback_command(plan, r.previous_flags, one_line=True)}"
        fields: dict[str, JsonValue] = {
            "decision": r.decision,
            "reason": r.reason,
            "applied": r.applied,
            "restore_failed": r.restore_failed,
            "target": plan.target.base_url,
            "delta_p95_pct": r.delta_p95_pct,
            "error_rate_pct": r.error_rate_pct,
        }
        failure = send_webhook(
            secrets.webhook_url, event, secrets.redact(text), fields, timeout_s=plan.notify.timeout_s
        )
        if failure:
            warnings.append(failure)
    return r.model_copy(update={"warnings": [*r.warnings, *warnings]}) if warnings else r


def _report(
    plan: Plan,
    result: CanaryResult,
    reports_dir: Path,
    history_path: Path,
    secrets: RunSecrets,
    index: HistoryIndex | None = None,
) -> CanaryResult:
    """Write the summary, the mini report and the history line, with every secret masked (a target may
    echo a token back in an error the run records)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    result = result.model_copy(
        update={"finished_at": datetime.now(UTC), "summary_path": str(reports_dir / SUMMARY)}
    )
    if secrets.values:
        result = CanaryResult.model_validate(secrets.redactor.value(result.model_dump()))
    (reports_dir / SUMMARY).write_text(secrets.redact(render_summary(plan, result)))
    (reports_dir / MINI).write_text(secrets.redact(render_mini(result)))
    record = HistoryRecord.of_run(result, plan.experiment)
    append_history(history_path, record)
    if index is not None:
        index(plan.target.base_url, record)
    return result
