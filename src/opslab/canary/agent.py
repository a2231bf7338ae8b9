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
from typing import Any

import numpy as np

from opslab.canary import history
from opslab.canary.loadgen import Window, run_window
from opslab.canary.plan import Plan
from opslab.canary.report_parser import parse_mini_report
from opslab.canary.summary import render_mini, render_summary
from opslab.canary.target import TargetClient, unhealthy
from opslab.errors import OpslabError
from opslab.judge import (
    Verdict,
    be_careful,
    bootstrap_relative_delta_ci,
    decide,
    mann_whitney,
    p95,
    percentile,
    relative_delta,
    sample_ratio_mismatch,
)

Progress = Callable[[str, float, str], None]
WindowRunner = Callable[..., Window]
SUMMARY = "LABOPS_AGENT_SUMMARY.txt"
REPORT_POLL_S = 0.5
MINI = "LAB_COMBO_REPORT_MINI.txt"


def _quiet(step: str, pct: float, message: str) -> None:
    return None


def judge_windows(plan: Plan, a: list[Window], b: list[Window]) -> dict[str, Any]:
    la = [x for w in a for x in w.latencies_ms]
    lb = [x for w in b for x in w.latencies_ms]
    sent_a, sent_b = sum(w.sent for w in a), sum(w.sent for w in b)
    errors_b = sum(w.errors for w in b)
    qps_a = sent_a / max(1e-9, sum(w.duration_s for w in a))
    qps_b = sent_b / max(1e-9, sum(w.duration_s for w in b))
    p95_a, p95_b = percentile(la, 95), percentile(lb, 95)
    delta = relative_delta(p95_a, p95_b)
    error_rate = 100.0 * errors_b / sent_b if sent_b else 100.0
    ci = bootstrap_relative_delta_ci(la, lb, p95, resamples=1000, seed=plan.seed)
    srm = sample_ratio_mismatch([sent_a, sent_b])
    mw = mann_whitney(la, lb)
    if not la or not lb:
        verdict = Verdict("FAIL", "no successful requests in an arm")
    else:
        verdict = decide(delta, error_rate, plan.thresholds.judge())
        verdict = be_careful(
            verdict,
            samples=(len(la), len(lb)),
            min_samples=plan.min_samples_per_arm,
            srm_p=srm.p_value,
            delta_ci=(ci.low, ci.high),
        )
    warnings = list(verdict.cautions)
    if srm.imbalance_pct > 5:
        warnings.append(f"AB imbalance {srm.imbalance_pct:.1f}% > 5%")
    return {
        "measured": bool(la and lb),
        "delta_p95_pct": delta,
        "delta_p95_ci": [ci.low, ci.high],
        "delta_qps_pct": relative_delta(qps_a, qps_b),
        "error_rate_pct": error_rate,
        "error_rate_a_pct": 100.0 * sum(w.errors for w in a) / sent_a if sent_a else 0.0,
        "ab_imbalance_pct": srm.imbalance_pct,
        "srm_p": srm.p_value,
        "p95_a_ms": p95_a,
        "p95_b_ms": p95_b,
        "qps_a": qps_a,
        "qps_b": qps_b,
        "samples": [len(la), len(lb)],
        "mw_p": mw.p_value,
        "hl_shift_ms": mw.hodges_lehmann,
        "decision": verdict.decision,
        "reason": verdict.reason,
        "warnings": warnings,
    }


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
        result.update(_from_target_report(plan, target, candidate, cancel, started, progress))
    else:
        _execute_load(plan, target, candidate, previous, result, started, cancel, progress, window)
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


def _execute_load(
    plan: Plan,
    target: TargetClient,
    candidate: dict[str, Any],
    previous: dict[str, Any],
    result: dict[str, Any],
    started: float,
    cancel: threading.Event,
    progress: Progress,
    window: WindowRunner,
) -> None:
    """Execute (ABAB windows of our own open-loop load, flags switched each window) and Judge."""
    e = plan.experiment
    a_windows: list[Window] = []
    b_windows: list[Window] = []
    total = 2 * e.rounds
    try:
        if e.warmup_seconds() > 0:
            # Cold connections and caches would inflate the first A window: warm up at A, count nothing.
            target.set_flags(previous)
            progress("Execute", 8, f"warm-up {e.warmup_seconds():g}s")
            window(
                target.request_url(),
                arm="warmup",
                qps=e.qps,
                seconds=e.warmup_seconds(),
                warmup_s=0.0,
                timeout_s=plan.target.timeout_s,
            )
        for i in range(total):
            arm = "A" if i % 2 == 0 else "B"
            if cancel.is_set():
                result["partial"] = f"cancelled after {i} of {total} windows"
                break
            if time.monotonic() - started + e.window_sec > plan.time_budget:
                result["partial"] = f"time budget {plan.time_budget:g}s reached after {i} of {total} windows"
                break
            target.set_flags(previous if arm == "A" else candidate)
            progress("Execute", 10 + 80 * i / total, f"round {i // 2 + 1} arm {arm}")
            w = window(
                target.request_url(),
                arm=arm,
                qps=e.qps,
                seconds=e.window_sec,
                warmup_s=e.window_sec * e.warmup_fraction,
                timeout_s=plan.target.timeout_s,
            )
            (a_windows if arm == "A" else b_windows).append(w)
            if arm == "B":
                stop = _early_stop(plan, w, target)
                if stop:
                    result["early_stop"] = stop
                    break
    except OpslabError as exc:
        result["early_stop"] = f"target failed mid-run: {exc.message}"
    finally:
        _restore(target, previous, result)
    progress("Judge", 92, "judging")
    if a_windows and b_windows:
        result.update(judge_windows(plan, a_windows, b_windows))
    else:
        result.update(
            measured=False,
            decision="FAIL",
            reason="not enough windows ran to compare A and B",
            error_rate_pct=0.0,
        )


def _from_target_report(
    plan: Plan,
    target: TargetClient,
    candidate: dict[str, Any],
    cancel: threading.Event,
    started: float,
    progress: Progress,
) -> dict[str, Any]:
    """The seed's original integration: the target runs the A/B itself (optionally started by a POST) and
    serves a mini report; its three numbers are judged by the same table. There are no per-request
    samples, so the statistical checks cannot run, and the summary says so."""
    e = plan.experiment
    try:
        if plan.target.experiment_path:
            progress(
                "Execute", 10, f"asking the target to run its experiment ({plan.target.experiment_path})"
            )
            target.start_experiment(
                {
                    "candidate_flags": candidate,
                    "qps": e.qps,
                    "window_sec": e.window_sec,
                    "rounds": e.rounds,
                    "seed": plan.seed,
                }
            )
        text = None
        while text is None:
            if cancel.is_set():
                return {
                    "measured": False,
                    "decision": "FAIL",
                    "reason": "cancelled before the target's report",
                }
            if time.monotonic() - started > plan.time_budget:
                return {
                    "measured": False,
                    "decision": "FAIL",
                    "reason": f"no report from the target within the time budget ({plan.time_budget:g}s)",
                    "partial": "time budget reached while waiting for the target's report",
                }
            text = target.fetch_report()
            if text is None:
                progress("Execute", 50, "waiting for the target's report")
                cancel.wait(REPORT_POLL_S)
        report = parse_mini_report(text)
    except OpslabError as exc:
        return {
            "measured": False,
            "decision": "FAIL",
            "reason": f"target report: {exc.message}",
            "error_rate_pct": 0.0,
        }
    progress("Judge", 92, "judging the target's report")
    found = {
        "source": "report",
        "report_text": text,
        "delta_p95_pct": report.delta_p95_pct,
        "delta_qps_pct": report.delta_qps_pct,
        "error_rate_pct": report.error_rate_pct or 0.0,
        "ab_imbalance_pct": report.ab_imbalance_pct,
        "warnings": [
            "judged from the target's own report: no samples, so no CI, SRM or minimum-sample checks"
        ],
    }
    if not report.measured or report.delta_p95_pct is None:
        return found | {
            "measured": False,
            "decision": "FAIL",
            "reason": "the target's report has no measurement",
        }
    verdict = decide(report.delta_p95_pct, report.error_rate_pct or 0.0, plan.thresholds.judge())
    return found | {"measured": True, "decision": verdict.decision, "reason": verdict.reason}


def _early_stop(plan: Plan, w: Window, target: TargetClient) -> str | None:
    limit = max(2 * plan.thresholds.max_error_rate, plan.thresholds.max_error_rate + 2)
    if w.sent >= 20 and w.error_rate_pct > limit:
        return (
            f"candidate error rate {w.error_rate_pct:.1f}% is well above {plan.thresholds.max_error_rate:g}%"
        )
    try:
        bad = unhealthy(target.health())
    except OpslabError as exc:
        return f"target health lost: {exc.message}"
    return f"target health lost: {', '.join(bad)}" if bad else None


def _restore(target: TargetClient, previous: dict[str, Any], result: dict[str, Any]) -> None:
    try:
        target.set_flags(previous)
    except OpslabError as exc:
        result["restore_failed"] = True
        result["warnings"] = [*result.get("warnings", []), f"could not restore baseline flags: {exc.message}"]


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
