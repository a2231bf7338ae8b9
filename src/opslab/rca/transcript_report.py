"""The report for a transcript: step signals as evidence, the decisive step and its agent, the
alternatives, and a confidence that says how sure the localiser is (``docs/rca.md``)."""

from __future__ import annotations

from opslab.rca.classify import classify
from opslab.rca.evidence import SNIPPET, category_hint, collect_evidence
from opslab.rca.localize import Localized, Ranked, localize
from opslab.rca.model import (
    PRECEDENCE,
    Alternative,
    Category,
    Confidence,
    Evidence,
    Hypothesis,
    RcaReport,
    RootCause,
    enforce_citations,
)
from opslab.rca.scoring import Localizer
from opslab.rca.signals import Signal, detect
from opslab.rca.templates import insufficient_report, template_for
from opslab.rca.transcript import Transcript, read_transcript
from opslab.telemetry import AgentRunIn

# On the calibrated confidence that the named step is the decisive one: medium is "more likely right
# than wrong", high "right four times in five".
HIGH, MEDIUM = 0.8, 0.5
TITLES = {
    "error": "Error in the step's output",
    "not_found": "Not found / nothing returned",
    "blocked": "Blocked by a guardrail, filter or permission",
    "success_claim": "Claims success",
    "stall": "Planner reports no progress",
    "replan": "Plan abandoned",
    "invented": "Made-up specifics (placeholder or assumption)",
    "end": "Run ended here",
    "first_failure": "First failure in the run",
    "terminal_failure": "Failure the run never recovered from",
    "instruction_failed": "Instruction its worker then failed on",
    "claim_after_failure": "Claim of success right after a failure",
    "before_stall": "Shortly before the planner reported no progress",
    "called_agent_failed": "The agent the lead called failed before it spoke",
    "loop_start": "Start of a loop of repeated actions",
    "write_action": "Consequential action",
    "unconfirmed_action": "Consequential action without the user's confirmation",
    "unexpected_action": "Action the task did not expect",
    "missing_action": "An expected action was never taken",
    "answer_mismatch": "Answer disagrees with the expected output",
    "user_deviation": "User asks for specifics its instructions never gave",
    "user_directed": "User dictated the action that went wrong",
    "user_choice": "User chose the option that went wrong",
    "blamed_by_lead": "The lead says this step did not do what was asked",
    "progress_then_stall": "Lead claimed progress, then stalled",
    "false_success": "Lead declared the request satisfied; the run failed",
    "abrupt_end": "The run stopped short after this step",
    "accepted_result": "Lead built on a worker's report",
    "failed_answer": "The run's answer (the run failed)",
}


def level(probability: float) -> Confidence:
    return "high" if probability >= HIGH else "medium" if probability >= MEDIUM else "low"


def answer_level(loc: Localized) -> Confidence:
    """How sure an answer is: its calibrated probability, and never more than low when the decisive
    step carries only the run's outcome (``Localized.outcome_only``): that is a symptom, not a cause."""
    return "low" if loc.outcome_only else level(loc.confidence)


def _signal_evidence(tr: Transcript, s: Signal, order: int) -> Evidence:
    turn = next(t for t in tr.turns if t.step_id == s.step_id)
    return Evidence(
        evidence_id=s.evidence_id,
        kind="signal",
        ref_id=s.step_id,
        title=f"{TITLES.get(s.kind, s.kind)} (step {s.n}, {turn.agent})",
        snippet=s.snippet[:SNIPPET],
        attributes={"signal": s.kind, "strength": s.strength, "step": s.n, "agent": turn.agent},
        step_id=s.step_id,
        order=order,
    )


def _candidate(tr: Transcript, r: Ranked, loc: Localized, decisive: bool) -> Evidence:
    turn = next(t for t in tr.turns if t.step_id == r.step_id)
    attrs: dict[str, object] = {"step": r.n, "agent": r.agent, "probability": r.probability}
    if decisive:
        attrs |= {"contributions": loc.contributions, "agent_contributions": loc.agent_contributions}
        if loc.agent_rule:
            attrs["agent_rule"] = loc.agent_rule
    return Evidence(
        evidence_id=f"ev_candidate_{r.step_id}",
        kind="candidate",
        ref_id=r.step_id,
        title=f"{'Decisive' if decisive else 'Candidate'} step {r.n} by {r.agent} (p={r.probability:.2f})",
        snippet=" ".join(turn.text[:SNIPPET].split()),
        attributes=attrs,
        step_id=r.step_id,
        order=r.n,
    )


def transcript_report(run: AgentRunIn, model: Localizer | None = None) -> RcaReport | None:
    """The report of a transcript, or None when nothing in it supports a claim (the caller abstains)."""
    tr = read_transcript(run)
    signals = detect(tr)
    loc = localize(tr, signals, model)
    if loc is None or not loc.claims:
        return None
    ranked = [loc.step, *(r for r in loc.ranking if r.step_id != loc.step.step_id)][:5]
    evidence = classify(
        [
            *collect_evidence(run),
            *(_signal_evidence(tr, s, s.n) for s in signals),
            *(_candidate(tr, r, loc, r is loc.step) for r in ranked),
        ],
        category_hint(run),
    )
    by_step: dict[str, list[str]] = {}
    for e in evidence:
        if e.step_id and e.kind != "candidate":
            by_step.setdefault(e.step_id, []).append(e.evidence_id)
    alternatives = [
        Alternative(
            step=r.n,
            step_id=r.step_id,
            agent=r.agent,
            probability=r.probability,
            evidence_ids=[f"ev_candidate_{r.step_id}", *by_step.get(r.step_id, [])][:6],
        )
        for r in ranked
    ]
    if loc.abstains:
        return _abstained(run, loc, evidence, alternatives)
    step = loc.step
    cited = [f"ev_candidate_{step.step_id}", *by_step.get(step.step_id, [])]
    on_step = [e for e in evidence if e.evidence_id in cited]
    # The signals the responsible agent's rule stands on are cited too.
    cited += [s.evidence_id for s in loc.agent_evidence if s.evidence_id not in cited]
    found = [c for c in PRECEDENCE if any(c in e.categories for e in on_step)]
    category: Category = found[0] if found else "unknown"
    confidence = answer_level(loc)
    kinds = [e.attributes.get("signal") for e in on_step if e.kind == "signal"]
    why = (
        ", ".join(TITLES.get(str(k), str(k)).lower() for k in kinds[:3]) or "ranked first by the step scorer"
    )
    reason = f"Step {step.n} by {step.agent}: {why}" + (f"; {loc.agent_rule}" if loc.agent_rule else "")
    if loc.outcome_only:
        reason += (
            "; only the run's outcome marks this step, so it is where the failure showed: the cause may be "
            "earlier (a lead, not a finding)"
        )
    t = template_for(category)
    hypotheses = [
        Hypothesis(
            title=f"Decisive step {step.n} by {step.agent}",
            description=f"{reason}. {t.description}",
            evidence_ids=cited[:8],
            confidence=confidence,
            verification_steps=[
                f"Read step {step.n} and the steps just before it: did the run become unrecoverable here?",
                *t.verification_steps,
            ],
            runbook_id=t.runbook.id,
        ),
        *(
            Hypothesis(
                title=f"Alternative: step {r.n} by {r.agent}",
                description=f"The step scorer gives step {r.n} probability {r.probability:.2f}.",
                evidence_ids=[f"ev_candidate_{r.step_id}", *by_step.get(r.step_id, [])][:6],
                confidence="low",
            )
            for r in ranked[1:]
        ),
    ]
    hypotheses, _ = enforce_citations(hypotheses, evidence)
    return RcaReport(
        run_id=run.run_id,
        category=category,
        insufficient_evidence=False,
        summary=(
            f"Run {run.run_id} of {run.agent_name} failed. Decisive step: {step.n} by {step.agent} "
            f"(confidence {confidence}; calibrated probability {loc.confidence:.2f}). {reason}."
        ),
        root_cause=RootCause(
            step_id=step.step_id, agent=step.agent, category=category, evidence_ids=cited, reason=reason
        ),
        root_cause_step=step.n,
        responsible_agent=step.agent,
        step_probability=loc.confidence,
        alternatives=alternatives[1:],
        evidence_index=evidence,
        hypotheses=hypotheses,
        confidence=confidence,
        verification_steps=list(t.verification_steps),
        action_items=[a.model_copy() for a in t.actions],
        runbook=t.runbook,
    )


def _abstained(
    run: AgentRunIn, loc: Localized, evidence: list[Evidence], alternatives: list[Alternative]
) -> RcaReport:
    """Signals fired, but the best answer is too unlikely to be right to be given: say so, and list the
    candidates a reader should look at first."""
    best = loc.step
    reason = (
        f"The localiser's best answer, step {best.n} by {best.agent}, has confidence {loc.confidence:.2f}, "
        f"below {loc.abstain_below:.2f}: on runs it was not fitted on, answers this unsure are rarely right. "
        f"Candidates, most probable first: {', '.join(f'step {a.step} ({a.agent})' for a in alternatives)}"
    )
    report = insufficient_report(
        run, reason, evidence, step_probability=loc.confidence, alternatives=alternatives
    )
    reading = [f"Read step {a.step} ({a.agent}) and the steps just before it." for a in alternatives[:3]]
    return report.model_copy(update={"verification_steps": [*reading, *report.verification_steps]})
