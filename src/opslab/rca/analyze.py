"""Evidence-first RCA of one run: collect evidence, classify, locate the root cause, write the report."""

from __future__ import annotations

from collections.abc import Callable, Collection

from opslab.rca.classify import classify
from opslab.rca.evidence import category_hint, collect_evidence, generic_only, version_evidence
from opslab.rca.model import (
    NO_FAILURE,
    PRECEDENCE,
    Category,
    ChainLink,
    Confidence,
    Evidence,
    HandledIssue,
    Hypothesis,
    RcaReport,
    RootCause,
    enforce_citations,
)
from opslab.rca.outcome import handled_issues, value_chain
from opslab.rca.scoring import Localizer
from opslab.rca.taxonomy import Taxonomy
from opslab.rca.templates import insufficient_report, template_for
from opslab.rca.transcript import is_transcript
from opslab.rca.transcript_report import transcript_report
from opslab.telemetry import AgentRunIn, VersionStat

INSUFFICIENT_REASON = "Limited telemetry: no tool failures or specific error details captured"
# Evidence that names a concrete failure (a root cause can sit there); loops and version history
# are patterns over many items and only explain a run when nothing concrete does.
_PATTERN_ONLY: frozenset[Category] = frozenset({"planner_loop", "prompt_regression"})

RcaProgress = Callable[[str, float], None]


def _noop(step: str, pct: float) -> None:
    return None


def analyze_run(
    run: AgentRunIn,
    *,
    history: list[VersionStat] | None = None,
    progress: RcaProgress = _noop,
    model: Localizer | None = None,
    taxonomy: Taxonomy | None = None,
) -> RcaReport:
    """The report of one run; ``model`` is the transcript localiser (default: the shipped one),
    ``taxonomy`` the categories and their rules (default: the built-in ones). The run's outcome comes
    first (``outcome``): a run that succeeded gets no root cause, only what it handled."""
    progress("Collecting evidence", 30)
    if run.status != "success" and is_transcript(run):
        # A conversation or multi-agent trace: localise the decisive step among the turns.
        progress("Classifying failure", 55)
        report = transcript_report(run, model)
        if report is not None:
            progress("Generating report", 85)
            return report
    evidence = collect_evidence(run)
    if history:
        regression = version_evidence(run, history)
        if regression:
            evidence.append(regression)
    progress("Classifying failure", 55)
    evidence = classify(evidence, category_hint(run), taxonomy)
    handled = handled_issues(run, evidence)
    progress("Generating report", 85)
    if run.status == "success":
        return succeeded_report(run, evidence, handled)
    generic = generic_only([e for e in evidence if e.evidence_id not in handled])
    if generic:
        # Failures were recorded, but each says only that something failed: nothing to explain with.
        said = "; ".join(f"{e.title}: {e.snippet!r}" for e in generic[:3])
        return insufficient_report(
            run,
            f"Only generic failures were captured ({said}): they say that something failed, not why",
            evidence,
            handled=list(handled.values()),
        )
    return build_report(run, evidence, handled=handled, taxonomy=taxonomy)


def _agent_of(run: AgentRunIn, step_id: str | None) -> str | None:
    step = next((s for s in run.steps if s.step_id == step_id), None)
    return (step.agent if step and step.agent else None) or run.agent_name


def locate_root_cause(
    run: AgentRunIn, evidence: list[Evidence], *, handled: Collection[str] = ()
) -> RootCause | None:
    """The earliest decisive failure, with the evidence on the same step that corroborates it. Evidence
    the run handled (``handled``: ids) is never it: the error that ended the run outranks those."""
    live = [e for e in evidence if e.evidence_id not in handled]
    concrete = [
        e for e in live if e.kind != "run_error" and any(c not in _PATTERN_ONLY for c in e.categories)
    ]
    candidates = concrete or [e for e in live if e.kind in ("tool_call", "guardrail", "step")] or live
    if not candidates:
        return None
    # Order by the step an item belongs to, then the most specific kind: a step and its failing tool
    # call start together, and the call says why.
    step_order = {e.step_id: e.order for e in evidence if e.kind == "step" and e.step_id}
    rank = {"tool_call": 0, "guardrail": 1, "step": 2}

    def position(e: Evidence) -> tuple[int, int, int]:
        anchor = min(e.order, step_order.get(e.step_id, e.order)) if e.step_id else e.order
        return anchor, rank.get(e.kind, 3), e.order

    first = min(candidates, key=position)
    category: Category = first.categories[0] if first.categories else "unknown"
    same_step = [
        e
        for e in evidence
        if first.step_id is not None
        and e.step_id == first.step_id
        and (category in e.categories or e.kind == "guardrail")
    ]
    ids = list(dict.fromkeys([first.evidence_id, *(e.evidence_id for e in same_step)]))
    where = f"step {first.step_id}" if first.step_id else "the run"
    return RootCause(
        step_id=first.step_id,
        agent=_agent_of(run, first.step_id),
        category=category,
        evidence_ids=ids,
        at=first.at,
        reason=f"{first.title} at {where}: {first.snippet}",
    )


def _position(run: AgentRunIn, step_id: str | None) -> int | None:
    return next((i for i, s in enumerate(run.steps, start=1) if s.step_id == step_id), None)


def build_report(
    run: AgentRunIn,
    evidence: list[Evidence],
    *,
    handled: dict[str, HandledIssue] | None = None,
    taxonomy: Taxonomy | None = None,
) -> RcaReport:
    handled = handled or {}
    if not [e for e in evidence if e.evidence_id not in handled]:
        return insufficient_report(run, INSUFFICIENT_REASON, evidence, handled=list(handled.values()))
    root = locate_root_cause(run, evidence, handled=handled)
    chain: list[ChainLink] = []
    traced = _traced(run, evidence, root)
    if traced is not None:  # the cause over the symptom: where the wrong value entered the run
        added, chain = traced
        cause = added[0]
        evidence = sorted([*evidence, *added], key=lambda e: (e.order, e.evidence_id))
        symptom = chain[-1]
        root = RootCause(
            step_id=cause.step_id,
            agent=_agent_of(run, cause.step_id),
            category="wrong_tool_argument",
            evidence_ids=[cause.evidence_id, symptom.evidence_id],
            at=cause.at,
            reason=f"{cause.snippet}; {symptom.says}",
        )
    precedence = taxonomy.precedence if taxonomy is not None else PRECEDENCE
    live = [e for e in evidence if e.evidence_id not in handled]  # what the run handled explains nothing
    found = [c for c in precedence if any(c in e.categories for e in live)]
    category: Category = (
        root.category if root and root.category != "unknown" else (found[0] if found else "unknown")
    )
    if root and root.category == "unknown" and category in _PATTERN_ONLY:
        # Nothing at the failing step says why; a pattern over the run (a loop, a version that fails
        # more than the one before) does: it is the root cause's category, and its evidence is cited.
        pattern = [e.evidence_id for e in evidence if category in e.categories]
        ids = list(dict.fromkeys([*root.evidence_ids, *pattern]))
        root = root.model_copy(update={"category": category, "evidence_ids": ids})
    hypotheses: list[Hypothesis] = []
    for i, cat in enumerate([category, *[c for c in found if c != category]]):
        support = [e for e in live if cat in e.categories]
        if cat == category and root:
            by_id = {e.evidence_id: e for e in evidence}
            support = [
                *(by_id[i] for i in root.evidence_ids),
                *(e for e in support if e.evidence_id not in root.evidence_ids),
            ]
        if not support:
            continue
        t = template_for(cat, taxonomy)
        confidence: Confidence = (
            "low"
            if cat == "unknown"
            else ("high" if i == 0 and len(support) >= 2 else "medium" if i == 0 else "low")
        )
        hypotheses.append(
            Hypothesis(
                title=t.title,
                description=f"{t.description} Evidence: {support[0].title} — {support[0].snippet}",
                evidence_ids=[e.evidence_id for e in support[:6]],
                confidence=confidence,
                verification_steps=list(t.verification_steps),
                runbook_id=t.runbook.id,
            )
        )
    hypotheses, _ = enforce_citations(hypotheses, evidence)
    primary = template_for(category, taxonomy)
    overall: Confidence = hypotheses[0].confidence if hypotheses else "low"
    where = f" at step {root.step_id}" if root and root.step_id else ""
    summary = (
        f"Run {run.run_id} of {run.agent_name} failed: {category.replace('_', ' ')}{where}. "
        f"{root.reason if root else ''}"
    ).strip()
    return RcaReport(
        run_id=run.run_id,
        category=category,
        insufficient_evidence=False,
        summary=summary,
        root_cause=root,
        root_cause_step=_position(run, root.step_id) if root else None,
        responsible_agent=root.agent if root else None,
        evidence_index=evidence,
        hypotheses=hypotheses,
        confidence=overall,
        verification_steps=list(primary.verification_steps),
        action_items=[a.model_copy() for a in primary.actions],
        runbook=primary.runbook,
        handled=list(handled.values()),
        causal_chain=chain,
    )


def _traced(
    run: AgentRunIn, evidence: list[Evidence], root: RootCause | None
) -> tuple[list[Evidence], list[ChainLink]] | None:
    """The chain behind a root cause that is a failed tool call (``outcome.value_chain``)."""
    if root is None:
        return None
    by_id = {e.evidence_id: e for e in evidence}
    symptom = next((by_id[i] for i in root.evidence_ids if by_id[i].kind == "tool_call"), None)
    if symptom is None or root.category not in ("unknown", "tool_schema_mismatch", "wrong_tool_argument"):
        return None  # a specific failure of its own (a timeout, a refusal) explains itself
    return value_chain(run, symptom)


def succeeded_report(
    run: AgentRunIn, evidence: list[Evidence], handled: dict[str, HandledIssue]
) -> RcaReport:
    """A run that succeeded: no root cause, nothing to fix; what it handled, with the evidence."""
    said = (
        f"; it handled {len(handled)} issue(s) on the way: "
        + "; ".join(f"{h.what} ({h.how})" for h in list(handled.values())[:3])
        if handled
        else ""
    )
    return RcaReport(
        run_id=run.run_id,
        outcome="succeeded",
        category=NO_FAILURE,
        insufficient_evidence=False,
        summary=f"Run {run.run_id} of {run.agent_name} succeeded: there is no root cause to find{said}.",
        evidence_index=evidence,
        hypotheses=[],
        confidence="high",
        verification_steps=[],
        action_items=[],
        handled=list(handled.values()),
    )
