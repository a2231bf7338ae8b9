"""Execute, two ways: ABAB windows of our own open-loop load with the flags switched each window (then
Judge), or the target's own experiment read from its mini report (the seed's original integration).

Both return an ``Outcome``: a failure of the target is data (a FAIL saying why), never an exception."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from opslab.canary.judging import judge_windows
from opslab.canary.loadgen import measure
from opslab.canary.model import Flags, Measurement, Outcome
from opslab.canary.plan import Plan
from opslab.canary.report_parser import parse_mini_report
from opslab.canary.target import TargetClient, unhealthy
from opslab.errors import OpslabError
from opslab.judge import decide

CanaryProgress = Callable[[str, float, str], None]
REPORT_POLL_S = 0.5
REPORT_ONLY = "judged from the target's own report: no samples, so no CI, SRM or minimum-sample checks"


class WindowRunner(Protocol):
    """Runs one window of load (``measure``); tests pass a seeded fake."""

    def __call__(
        self, url: str, *, arm: str, qps: float, seconds: float, warmup_s: float = 0.0, timeout_s: float = 5.0
    ) -> Measurement: ...


def quiet(step: str, pct: float, message: str) -> None:
    return None


@dataclass
class RunContext:
    """How a run executes: how it is cancelled, where its progress goes, what runs a window, and the clock
    its time budget is counted on (from when the context is made)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    progress: CanaryProgress = quiet
    window: WindowRunner = measure
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def over_budget(self, plan: Plan, more_s: float = 0.0) -> bool:
        return self.clock() - self.started + more_s > plan.time_budget


def execute_load(plan: Plan, target: TargetClient, previous: Flags, ctx: RunContext) -> Outcome:
    """Execute (ABAB windows of our own open-loop load, flags switched each window; A restored after in
    every case) and Judge."""
    e, candidate = plan.experiment, plan.candidate_flags()
    windows: dict[str, list[Measurement]] = {"A": [], "B": []}
    total = 2 * e.rounds
    partial = early_stop = None
    try:
        if e.warmup_seconds() > 0:
            # Cold connections and caches would inflate the first A window: warm up at A, count nothing.
            target.set_flags(previous)
            ctx.progress("Execute", 8, f"warm-up {e.warmup_seconds():g}s")
            ctx.window(
                target.request_url(),
                arm="warmup",
                qps=e.qps,
                seconds=e.warmup_seconds(),
                timeout_s=plan.target.timeout_s,
            )
        for i in range(total):
            arm = "A" if i % 2 == 0 else "B"
            if ctx.cancel.is_set():
                partial = f"cancelled after {i} of {total} windows"
                break
            if ctx.over_budget(plan, e.window_sec):
                partial = f"time budget {plan.time_budget:g}s reached after {i} of {total} windows"
                break
            target.set_flags(previous if arm == "A" else candidate)
            ctx.progress("Execute", 10 + 80 * i / total, f"round {i // 2 + 1} arm {arm}")
            w = ctx.window(
                target.request_url(),
                arm=arm,
                qps=e.qps,
                seconds=e.window_sec,
                warmup_s=e.window_sec * e.warmup_fraction,
                timeout_s=plan.target.timeout_s,
            )
            windows[arm].append(w)
            if arm == "B":
                early_stop = _early_stop(plan, w, target)
                if early_stop:
                    break
    except OpslabError as exc:
        early_stop = f"target failed mid-run: {exc.message}"
    warnings = _restore(target, previous)
    ctx.progress("Judge", 92, "judging")
    if not (windows["A"] and windows["B"]):
        return Outcome(
            decision="FAIL",
            reason="not enough windows ran to compare A and B",
            partial=partial,
            early_stop=early_stop,
            restore_failed=bool(warnings),
            warnings=warnings,
        )
    judgement = judge_windows(plan, windows["A"], windows["B"])
    return Outcome(
        decision=judgement.decision,
        reason=judgement.reason,
        judgement=judgement,
        partial=partial,
        early_stop=early_stop,
        restore_failed=bool(warnings),
        warnings=[*judgement.warnings, *warnings],
    )


def read_target_report(plan: Plan, target: TargetClient, ctx: RunContext) -> Outcome:
    """The seed's original integration: the target runs the A/B itself (optionally started by a POST) and
    serves a mini report; its three numbers are judged by the same table. There are no per-request
    samples, so the statistical checks cannot run, and the summary says so."""
    e = plan.experiment
    try:
        if plan.target.experiment_path:
            ctx.progress(
                "Execute", 10, f"asking the target to run its experiment ({plan.target.experiment_path})"
            )
            target.start_experiment(
                {
                    "candidate_flags": plan.candidate_flags(),
                    "qps": e.qps,
                    "window_sec": e.window_sec,
                    "rounds": e.rounds,
                    "seed": plan.seed,
                }
            )
        text = None
        while text is None:
            if ctx.cancel.is_set():
                return Outcome(decision="FAIL", reason="cancelled before the target's report")
            if ctx.over_budget(plan):
                return Outcome(
                    decision="FAIL",
                    reason=f"no report from the target within the time budget ({plan.time_budget:g}s)",
                    partial="time budget reached while waiting for the target's report",
                )
            text = target.fetch_report()
            if text is None:
                ctx.progress("Execute", 50, "waiting for the target's report")
                ctx.cancel.wait(REPORT_POLL_S)
        report = parse_mini_report(text)
    except OpslabError as exc:
        return Outcome(decision="FAIL", reason=f"target report: {exc.message}")
    ctx.progress("Judge", 92, "judging the target's report")
    if not report.measured or report.delta_p95_pct is None:
        return Outcome(
            decision="FAIL",
            reason="the target's report has no measurement",
            report=report,
            warnings=[REPORT_ONLY],
        )
    verdict = decide(report.delta_p95_pct, report.error_rate_pct or 0.0, plan.thresholds.judge())
    return Outcome(decision=verdict.decision, reason=verdict.reason, report=report, warnings=[REPORT_ONLY])


def _early_stop(plan: Plan, w: Measurement, target: TargetClient) -> str | None:
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


def _restore(target: TargetClient, previous: Flags) -> list[str]:
    """Back to A; a warning if the target would not take it (then nothing may be applied either)."""
    try:
        target.set_flags(previous)
    except OpslabError as exc:
        return [f"could not restore baseline flags: {exc.message}"]
    return []
