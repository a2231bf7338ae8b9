"""Execute, two ways: ABAB windows of our own open-loop load with the flags switched each window (then
Judge), or the target's own experiment read from its mini report (the seed's original integration)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from opslab.canary.judging import judge_windows
from opslab.canary.loadgen import Window
from opslab.canary.plan import Plan
from opslab.canary.report_parser import parse_mini_report
from opslab.canary.target import TargetClient, unhealthy
from opslab.errors import OpslabError
from opslab.judge import decide

Progress = Callable[[str, float, str], None]
WindowRunner = Callable[..., Window]
REPORT_POLL_S = 0.5


def execute_load(
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


def read_target_report(
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
