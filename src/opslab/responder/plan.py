"""Planning: the next action for a diagnosis, or the reason there is none.

Candidates are the typed ``remediation`` of the actions that fixed similar past incidents, then the
runbook's own, in order. A candidate is skipped when it was already tried in this incident, when the
action server does not offer it, or while it cools down (it ran less than ``cooldown_s`` ago, in any
incident). Its risk is what the action server's catalog says: the system that owns an action declares
what it risks there, and neither a runbook nor a learned incident can lower it. At ``approval_risk`` or
above (a policy the user turns on; off by default) it waits for a human unless ``auto_approve``. No more
than ``max_actions`` run per incident.

A wait is a delay, never a verdict: when the only candidates left are cooling down, the decision is to
wait until the first cooldown ends (``retry_at``), and a high-risk action on a diagnosis under
``high_risk_confidence``, or resting on soft signals only (a trend, slowness: what a load burst or an
experiment also brings), waits ``confirm_s`` once, to run only if the fault outlives the wait. With
nothing left to try at all the incident is escalated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from opslab.knowledge import Document, Remediation
from opslab.responder.config import ResponderConfig
from opslab.responder.model import ActionSpec, Diagnosis, PlannedAction, Risk

RISK_RANK: dict[Risk, int] = {"low": 0, "medium": 1, "high": 2}


class PlanDecision(BaseModel):
    action: PlannedAction | None = None
    needs_approval: bool = False
    retry_at: datetime | None = Field(None, description="Nothing to run now: plan again at this time.")
    hold: Literal["cooldown", "confirm"] | None = None
    held_action: str | None = None
    remaining: list[PlannedAction] = Field(default_factory=list, description="Later candidates, in order.")
    skipped: list[str] = Field(default_factory=list)
    reason: str = ""


def needs_approval(risk: Risk, config: ResponderConfig) -> bool:
    """Whether an action of ``risk`` waits for a human under the user's approval policy."""
    if config.auto_approve or config.approval_risk is None:
        return False
    return RISK_RANK[risk] >= RISK_RANK[config.approval_risk]


def candidates(runbook: Document | None, similar: Sequence[Document]) -> list[tuple[Remediation, str]]:
    """(remediation, source document id) in preference order, each action+params once."""
    out: list[tuple[Remediation, str]] = []
    seen: set[str] = set()
    for doc in [*similar, *([runbook] if runbook else [])]:
        for rem in doc.remediation:
            key = PlannedAction(name=rem.name, params=rem.params).key
            if key not in seen:
                seen.add(key)
                out.append((rem, doc.id))
    return out


MORE_EVIDENCE = "more-evidence"  # the confirmation wait of a diagnosis too unsure to act on


def plan_next(
    *,
    diagnosis: Diagnosis,
    runbook: Document | None,
    similar: Sequence[Document] = (),
    catalog: Sequence[ActionSpec],
    tried: Sequence[str],
    executed: int,
    last_run: Mapping[str, datetime],
    now: datetime,
    config: ResponderConfig,
    waited: Sequence[str] = (),
    hard: bool = True,
) -> PlanDecision:
    """The next action; ``hard``: the incident rests on a hard signal (``Assessment.hard``), ``waited``:
    the high-risk actions whose confirmation wait was served."""
    if diagnosis.category == "unknown" or runbook is None:
        return PlanDecision(reason=f"no runbook for {diagnosis.category}: a human must look")
    if diagnosis.confidence < config.min_confidence:
        if not hard and MORE_EVIDENCE not in waited:
            # Trends only, and too little to go on yet: a fault that goes on shows more (a leak reaches its
            # limit, errors follow), so the diagnosis is made again once, after the confirmation wait.
            until = now + timedelta(seconds=config.confirm_s)
            return PlanDecision(
                retry_at=until,
                hold="confirm",
                held_action=MORE_EVIDENCE,
                reason=(
                    f"confidence {diagnosis.confidence:.2f} below {config.min_confidence:.2f} on trends "
                    f"only: diagnosing again at {until:%H:%M:%S} if the fault goes on"
                ),
            )
        return PlanDecision(
            reason=f"confidence {diagnosis.confidence:.2f} below {config.min_confidence:.2f}: not acting"
        )
    if executed >= config.max_actions:
        return PlanDecision(reason=f"max actions per incident ({config.max_actions}) reached")
    offered = {a.name: a for a in catalog}
    chosen: list[PlannedAction] = []
    skipped: list[str] = []
    cooling: list[tuple[datetime, str]] = []
    for rem, source in candidates(runbook, similar):
        planned = PlannedAction(
            name=rem.name,
            params=rem.params,
            risk=rem.risk,
            reason=rem.description or f"from {source}",
            runbook_id=source,
        )
        if planned.key in tried:
            skipped.append(f"{planned.key}: already tried")
            continue
        spec = offered.get(rem.name)
        if spec is None:
            skipped.append(f"{planned.key}: not offered by the action server")
            continue
        ran = last_run.get(rem.name)
        if ran is not None and now - ran < timedelta(seconds=config.cooldown_s):
            skipped.append(f"{planned.key}: cooling down (ran {(now - ran).total_seconds():.0f}s ago)")
            cooling.append((ran + timedelta(seconds=config.cooldown_s), planned.key))
            continue
        chosen.append(planned.model_copy(update={"risk": spec.risk}))
    if not chosen and cooling:
        until, key = min(cooling)
        return PlanDecision(
            skipped=skipped,
            retry_at=until,
            hold="cooldown",
            held_action=key,
            reason=f"{key} cools down until {until:%H:%M:%S}: acting then if the fault goes on",
        )
    if not chosen:
        if skipped:
            return PlanDecision(skipped=skipped, reason=f"nothing left to try ({'; '.join(skipped)})")
        # A runbook with no remediation says what a human must do: that is the escalation's reason.
        return PlanDecision(
            reason=f"nothing the action server offers fixes this: {runbook.title} — {runbook.summary}"
        )
    first = chosen[0]
    unsure = not hard or diagnosis.confidence < config.high_risk_confidence
    if first.risk == "high" and unsure and first.key not in waited:
        until = now + timedelta(seconds=config.confirm_s)
        return PlanDecision(
            skipped=skipped,
            retry_at=until,
            hold="confirm",
            held_action=first.key,
            reason=(
                f"{first.key} is high risk and the diagnosis ({diagnosis.confidence:.2f}) "
                f"{'rests on trends only' if not hard else 'is unsure'}: acting at {until:%H:%M:%S} if "
                "the fault outlives the wait"
            ),
        )
    return PlanDecision(
        action=first,
        needs_approval=needs_approval(first.risk, config),
        remaining=chosen[1:],
        skipped=skipped,
        reason=f"{first.key} ({first.risk} risk) from {first.runbook_id}",
    )
