"""Execute: ABAB windows with the flags switched each window — measured by our own open-loop load, by
Prometheus, or both — then Judge. (The other way, the target's own experiment read from its mini report,
is ``report_mode.py``.)

Both return an ``Outcome``: a failure of the target is data (a FAIL saying why), never an exception. A
stop (a signal, a cancel) ends the current window at once; A is then restored and read back like after
every run, and the outcome is INTERRUPTED."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from opslab.canary.guards import judge_metric, with_guards
from opslab.canary.judging import judge_prometheus, judge_windows
from opslab.canary.loadgen import LiveWindow, LoadSpec, measure
from opslab.canary.model import Flags, Judgement, Measurement, Outcome, WindowSummary
from opslab.canary.plan import Plan
from opslab.canary.prometheus import WindowMetrics, WindowSpan
from opslab.canary.target import TargetClient, restored, unhealthy
from opslab.errors import OpslabError
from opslab.judge import percentile

CanaryProgress = Callable[[str, float, str], None]
RESTORE_ATTEMPTS = 3
# Times a window disturbed by its own load generator is measured again (``Measurement.generator_stall``).
REMEASURE = 2


class WindowRunner(Protocol):
    """Runs one window of load (``measure``); tests pass a seeded fake."""

    def __call__(
        self,
        load: LoadSpec,
        *,
        arm: str,
        qps: float,
        seconds: float,
        warmup_s: float = 0.0,
        timeout_s: float = 5.0,
        cancel: threading.Event | None = None,
        live: LiveWindow | None = None,
    ) -> Measurement: ...


class MetricsReader(Protocol):
    """Reads one window's numbers from where production keeps them (``PrometheusSource``)."""

    def read_window(self, span: WindowSpan) -> WindowMetrics: ...


class Stop(threading.Event):
    """A cancel that says why (which signal; who cancelled)."""

    reason = "cancelled"

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.set()


def quiet(step: str, pct: float, message: str) -> None:
    return None


@dataclass
class RunContext:
    """How a run executes: how it is stopped, where its progress goes (``watch`` sees each window as it
    runs), what runs a window, what reads Prometheus, and the clocks (the time budget counts on ``clock``
    from when the context is made; windows are stamped with ``wall`` for PromQL)."""

    cancel: threading.Event = field(default_factory=Stop)
    progress: CanaryProgress = quiet
    window: WindowRunner = measure
    metrics: MetricsReader | None = None
    watch: Callable[[LiveWindow], None] | None = None
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def over_budget(self, plan: Plan, more_s: float = 0.0) -> bool:
        return self.clock() - self.started + more_s > plan.time_budget

    def stop_reason(self) -> str:
        return self.cancel.reason if isinstance(self.cancel, Stop) else "cancelled"


@dataclass
class Windows:
    """What the ABAB windows measured, per arm, and when each ran."""

    load: dict[str, list[Measurement]] = field(default_factory=lambda: {"A": [], "B": []})
    spans: list[WindowSpan] = field(default_factory=list)
    summaries: list[WindowSummary] = field(default_factory=list)

    def read(self, reader: MetricsReader | None) -> dict[str, list[WindowMetrics]]:
        out: dict[str, list[WindowMetrics]] = {"A": [], "B": []}
        if reader is not None:
            for span in self.spans:
                out[span.arm].append(reader.read_window(span))
        return out


def execute_load(plan: Plan, target: TargetClient, previous: Flags, ctx: RunContext) -> Outcome:
    """Execute (ABAB windows, flags switched each window; A restored and read back after, in every case)
    and Judge."""
    e, candidate = plan.experiment, plan.candidate_flags()
    runs = Windows()
    remeasured: list[str] = []
    total = 2 * e.rounds
    partial = early_stop = interrupted = None
    load = target.load() if plan.metrics.load else None
    try:
        if load is not None and e.warmup_seconds() > 0:
            # Cold connections and caches would inflate the first A window: warm up at A, count nothing.
            target.set_flags(previous)
            ctx.progress("Execute", 8, f"warm-up {e.warmup_seconds():g}s")
            _window(plan, ctx, load, "warmup", e.warmup_seconds(), 0, total)
        for i in range(total):
            arm = e.arm(i)
            if ctx.cancel.is_set():
                break
            if ctx.over_budget(plan, e.window_sec):
                partial = f"time budget {plan.time_budget:g}s reached after {i} of {total} windows"
                break
            target.set_flags(previous if arm == "A" else candidate)
            ctx.progress("Execute", 10 + 80 * i / total, f"round {i // 2 + 1} arm {arm}")
            began = ctx.wall()
            w = _window(plan, ctx, load, arm, e.window_sec, i, total)
            # A window whose load generator could not keep its schedule measured this machine, not the
            # target: measured again (twice at most, within the budget), and said so.
            for _ in range(REMEASURE):
                stall = w.generator_stall(e.window_sec * (1 - e.warmup_fraction)) if w is not None else None
                if stall is None or ctx.cancel.is_set() or ctx.over_budget(plan, e.window_sec):
                    break
                remeasured.append(f"round {i // 2 + 1} arm {arm} measured again: {stall}")
                ctx.progress("Execute", 10 + 80 * i / total, f"round {i // 2 + 1} arm {arm} again: {stall}")
                began = ctx.wall()
                w = _window(plan, ctx, load, arm, e.window_sec, i, total)
            if ctx.cancel.is_set():
                break  # a window cut short is not a window
            runs.spans.append(WindowSpan(arm, began, began + e.window_sec * e.warmup_fraction, ctx.wall()))
            if w is not None:
                runs.load[arm].append(w)
                runs.summaries.append(_summary(i, arm, w))
                ctx.progress("Execute", 10 + 80 * (i + 1) / total, _window_line(i, arm, w))
            if arm == "B":
                early_stop = _early_stop(plan, w, target)
                if early_stop:
                    break
    except OpslabError as exc:
        early_stop = f"target failed mid-run: {exc.message}"
    if ctx.cancel.is_set():
        interrupted = f"{ctx.stop_reason()} after {len(runs.spans)} of {total} windows"
    ctx.progress("Restore", 91, "restoring the baseline flags")
    restore_ok, restore_warnings = restore(target, previous)
    warnings = [*remeasured, *restore_warnings]
    ctx.progress("Judge", 92, "judging")
    base = Outcome(
        decision="FAIL",
        reason="not enough windows ran to compare A and B",
        judged_by=plan.metrics.source,
        partial=partial,
        early_stop=early_stop,
        interrupted=interrupted,
        restore_failed=not restore_ok,
        warnings=warnings,
        windows=runs.summaries,
    )
    if not (any(s.arm == "A" for s in runs.spans) and any(s.arm == "B" for s in runs.spans)):
        return base
    if interrupted:
        # What ran is reported, not judged: the run never reached its verdict.
        return base.model_copy(update={"judgement": _judge_load(plan, runs)})
    try:
        read = runs.read(ctx.metrics)
    except OpslabError as exc:
        return base.model_copy(update={"reason": f"metrics: {exc.message}"})
    measured = _judge_load(plan, runs)  # None when our load did not run (metrics.load: false)
    judgement, load_check = measured, None
    if plan.metrics.source == "prometheus":
        sent = (sum(w.sent for w in runs.load["A"]), sum(w.sent for w in runs.load["B"]))
        judgement, load_check = judge_prometheus(plan, read["A"], read["B"], sent), measured
        if load_check is not None and load_check.decision != judgement.decision:
            judgement.warnings.append(
                f"the load generator's own verdict of these windows is {load_check.decision} "
                f"(ΔP95 {load_check.delta_p95_pct:+.1f}%)"
            )
    if judgement is None:
        return base
    guards = [
        judge_metric(m, runs.load["A"], runs.load["B"], read["A"], read["B"]) for m in plan.metrics.custom
    ]
    decision, reason = with_guards(judgement.decision, judgement.reason, guards)
    return base.model_copy(
        update={
            "decision": decision,
            "reason": reason,
            "judgement": judgement,
            "load_check": load_check,
            "metrics": guards,
            "warnings": [*judgement.warnings, *warnings],
        }
    )


def _judge_load(plan: Plan, runs: Windows) -> Judgement | None:
    if not (runs.load["A"] and runs.load["B"]):
        return None
    return judge_windows(plan, runs.load["A"], runs.load["B"])


def _window(
    plan: Plan, ctx: RunContext, load: LoadSpec | None, arm: str, seconds: float, index: int, total: int
) -> Measurement | None:
    """One window: our load, or (Prometheus reading the service's own traffic) a wait that a stop ends."""
    e = plan.experiment
    live = LiveWindow(arm=arm, index=index, total=total, seconds=seconds)
    if ctx.watch is not None:
        ctx.watch(live)
    if load is None:
        ctx.cancel.wait(seconds)
        return None
    return ctx.window(
        load,
        arm=arm,
        qps=e.qps,
        seconds=seconds,
        warmup_s=0.0 if arm == "warmup" else seconds * e.warmup_fraction,
        timeout_s=plan.target.timeout_s,
        cancel=ctx.cancel,
        live=live,
    )


def _summary(i: int, arm: Literal["A", "B"], w: Measurement) -> WindowSummary:
    p95 = round(percentile(w.latencies_ms, 95), 3) if w.latencies_ms else None
    served = None
    if w.latencies_ms and len(w.overhead_ms) == len(w.latencies_ms):
        served = round(percentile([t - o for t, o in zip(w.latencies_ms, w.overhead_ms, strict=True)], 95), 3)
    return WindowSummary(
        index=i,
        arm=arm,
        sent=w.sent,
        errors=w.errors,
        p95_ms=p95,
        qps=round(w.achieved_qps, 2),
        served_p95_ms=served,
    )


def _window_line(i: int, arm: str, w: Measurement) -> str:
    shown = f"p95 {percentile(w.latencies_ms, 95):.1f} ms" if w.latencies_ms else "no successful request"
    return f"round {i // 2 + 1} arm {arm} done: {w.sent} sent, {shown}, {w.errors} errors"


def _early_stop(plan: Plan, w: Measurement | None, target: TargetClient) -> str | None:
    limit = max(2 * plan.thresholds.max_error_rate, plan.thresholds.max_error_rate + 2)
    if w is not None and w.sent >= 20 and w.error_rate_pct > limit:
        return (
            f"candidate error rate {w.error_rate_pct:.1f}% is well above {plan.thresholds.max_error_rate:g}%"
        )
    try:
        bad = unhealthy(target.health())
    except OpslabError as exc:
        return f"target health lost: {exc.message}"
    return f"target health lost: {', '.join(bad)}" if bad else None


def restore(
    target: TargetClient, previous: Flags, attempts: int = RESTORE_ATTEMPTS
) -> tuple[bool, list[str]]:
    """Back to A, read back to be sure; retried, since a target in doubt must not be left so. False (with
    why) when it would not take A: then nothing may be applied, and the summary says so loudly."""
    why = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.5 * attempt)
        try:
            target.set_flags(previous)
            ok, notes = restored(previous, target.get_flags())
        except OpslabError as exc:
            why = exc.message
            continue
        if ok:
            return True, notes
        why = "the flags read back after the restore are not the baseline"
    return False, [f"could not restore baseline flags after {attempts} attempts: {why}"]
