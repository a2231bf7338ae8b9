"""Execute and Judge the seed's original way (``mode: report``): the target runs the A/B itself and serves
a mini report, whose three numbers the same table judges; a verdict of the report's own that disagrees
with ours is settled by ``plan.report_verdict``."""

from __future__ import annotations

from opslab.canary.balance import imbalance_of, reported_imbalance_warning
from opslab.canary.direction import decide_p95
from opslab.canary.execute import RunContext
from opslab.canary.model import Outcome
from opslab.canary.model import Verdict as Decision
from opslab.canary.plan import Plan
from opslab.canary.report_parser import parse_mini_report
from opslab.canary.target import TargetClient
from opslab.errors import OpslabError
from opslab.judge import Verdict, stricter

REPORT_POLL_S = 0.5
REPORT_ONLY = "judged from the target's own report: no per-request samples, so no CI or minimum-sample checks"
SRM_ALPHA = 0.001  # as for our own windows (``be_careful``)


def read_target_report(plan: Plan, target: TargetClient, ctx: RunContext) -> Outcome:
    """The seed's original integration: the target runs the A/B itself (optionally started by a POST) and
    serves a mini report; its three numbers are judged by the same table. There are no per-request
    samples, so the statistical checks cannot run, and the summary says so. When the report carries a
    verdict of its own that disagrees with ours, ``plan.report_verdict`` says which wins."""
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
        ctx.progress("Execute", 50, "waiting for the target's report")
        while text is None:
            if ctx.cancel.is_set():
                return Outcome(
                    decision="INTERRUPTED",
                    reason=f"interrupted: {ctx.stop_reason()} before the target's report",
                    interrupted=ctx.stop_reason(),
                )
            if ctx.over_budget(plan):
                return Outcome(
                    decision="FAIL",
                    reason=f"no report from the target within the time budget ({plan.time_budget:g}s)",
                    partial="time budget reached while waiting for the target's report",
                )
            text = target.fetch_report()
            if text is None:
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
    warnings = [REPORT_ONLY]
    if report.samples is not None:
        imbalance = imbalance_of(*report.samples).warning(report.srm_p)
    elif report.ab_imbalance_pct is not None:
        imbalance = reported_imbalance_warning(report.ab_imbalance_pct, report.srm_p)
    else:
        imbalance = None
    if imbalance is not None:
        warnings.append(imbalance)
    ours = decide_p95(report.delta_p95_pct, report.error_rate_pct or 0.0, plan.thresholds.judge())
    if ours.decision == "PASS" and report.srm_p is not None and report.srm_p < SRM_ALPHA:
        why = f"sample-ratio mismatch between arms (chi-square p={report.srm_p:.2g})"
        ours = Verdict("EDGE", f"inconclusive: {ours.reason}, but {why}", [why])
    theirs = _reported_verdict(report.other)
    decision, reason = ours.decision, ours.reason
    if theirs is not None and theirs != ours.decision:
        winner = {"stricter": stricter(ours.decision, theirs), "ours": ours.decision, "target": theirs}
        decision = winner[plan.report_verdict]
        reason = f"{ours.reason}; the target's report says {theirs}, ours {ours.decision}: {decision} wins "
        reason += f"(report_verdict: {plan.report_verdict})"
    return Outcome(
        decision=decision,
        reason=reason,
        report=report,
        target_verdict=theirs,
        our_verdict=ours.decision,
        warnings=warnings,
    )


VERDICTS: dict[str, Decision] = {"PASS": "PASS", "EDGE": "EDGE", "FAIL": "FAIL"}


def _reported_verdict(other: dict[str, str]) -> Decision | None:
    """A ``Verdict:`` or ``Decision:`` line of the report, if it has one."""
    for key, value in other.items():
        if key.strip().lower() in ("verdict", "decision") and value.strip().upper() in VERDICTS:
            return VERDICTS[value.strip().upper()]
    return None
