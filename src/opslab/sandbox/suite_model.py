"""The chaos suite's typed results and how one scenario is scored against its hidden key.

Scoring reads only what the responder did (its incidents and the actions it executed) and what the target
looks like at the end (the action server's own health check); the key (``Scenario.expected``) is never
shown to the responder.
"""

from __future__ import annotations

import statistics
from datetime import datetime

from pydantic import BaseModel, Field

from opslab.responder import Incident
from opslab.sandbox.chaos import Scenario

SUITE_SCHEMA_VERSION = 1


class ScenarioScore(BaseModel):
    name: str
    fault: str = Field(
        description="The fault injected (`a+b` for several); `none` or `traffic_spike` for controls."
    )
    control: bool
    repeat: int = 0
    beside: str = Field("none", description="What ran beside the fault (``sandbox.beside``).")
    expected_category: str | None
    expected_outcome: str
    detected: bool
    mttd_s: float | None = Field(description="From the injection to the incident's opening.")
    diagnosis: list[str] = Field(default_factory=list, description="Every category the responder diagnosed.")
    diagnosis_correct: bool
    resolved: bool = Field(description="The last incident was resolved and the target ended healthy.")
    mttr_s: float | None = Field(description="From the injection to the verified recovery.")
    outcome: str = Field(description="resolved | escalated | unresolved | quiet (no incident)")
    outcome_correct: bool
    actions: int
    action_names: list[str] = Field(default_factory=list)
    false_actions: int = Field(
        description="Actions outside the key's accepted remediations (any on a control)."
    )
    incidents: list[str] = Field(default_factory=list)
    polls: int = 0
    note: str = ""


class SuiteSummary(BaseModel):
    scenarios: int
    faults: int
    controls: int
    detected_rate: float
    diagnosis_rate: float
    resolved_rate: float = Field(description="Of the fault scenarios expected to resolve.")
    outcome_rate: float = Field(description="Of every scenario: ended as its key expects.")
    false_actions: int
    control_actions: int
    median_mttd_s: float | None
    median_mttr_s: float | None
    max_mttr_s: float | None


class SuiteResult(BaseModel):
    schema_version: int = SUITE_SCHEMA_VERSION
    started_at: datetime
    beside: str = "none"
    poll_interval_s: float
    repeat: int
    scenarios: list[ScenarioScore]
    summary: SuiteSummary


def fault_label(scenario: Scenario) -> str:
    return "+".join(scenario.faults) or "none"


def score(
    scenario: Scenario,
    incidents: list[Incident],
    *,
    injected_at: datetime,
    healthy_at_end: bool,
    repeat: int,
    polls: int,
) -> ScenarioScore:
    expected = scenario.expected
    ordered = sorted(incidents, key=lambda i: i.opened_at)
    executed = [a for i in ordered for a in i.actions]  # refused or failed calls count too
    names = [a.action for a in executed]
    accepted = set(expected.remediations)
    false_actions = len(names) if expected.control else sum(1 for n in names if n not in accepted)
    diagnosed: list[str] = []
    for inc in ordered:
        for cat in inc.categories or ([inc.category] if inc.category else []):
            if cat not in diagnosed:
                diagnosed.append(cat)
    wanted = expected.categories
    diagnosis_correct = (
        (not ordered) if expected.control else bool(diagnosed) and set(wanted) <= set(diagnosed)
    )
    last = ordered[-1] if ordered else None
    if last is None:
        outcome = "quiet"
    elif last.status == "resolved" and healthy_at_end:
        outcome = "resolved"
    elif last.status == "escalated":
        outcome = "escalated"
    else:
        outcome = "unresolved"
    resolved = outcome == "resolved"
    outcome_correct = (not ordered and healthy_at_end) if expected.control else outcome == expected.outcome
    mttd = (ordered[0].opened_at - injected_at).total_seconds() if ordered else None
    mttr = None
    if resolved and last is not None and last.resolved_at is not None:
        mttr = (last.resolved_at - injected_at).total_seconds()
    return ScenarioScore(
        name=scenario.name,
        fault=fault_label(scenario),
        control=expected.control,
        repeat=repeat,
        expected_category=None if expected.control else expected.category,
        expected_outcome="quiet" if expected.control else expected.outcome,
        detected=bool(ordered),
        mttd_s=round(mttd, 2) if mttd is not None else None,
        diagnosis=diagnosed,
        diagnosis_correct=diagnosis_correct,
        resolved=resolved,
        mttr_s=round(mttr, 2) if mttr is not None else None,
        outcome=outcome,
        outcome_correct=outcome_correct,
        actions=len(names),
        action_names=names,
        false_actions=false_actions,
        incidents=[i.id for i in ordered],
        polls=polls,
    )


def summarize(scores: list[ScenarioScore]) -> SuiteSummary:
    faults = [s for s in scores if not s.control]
    controls = [s for s in scores if s.control]
    to_resolve = [s for s in faults if s.expected_outcome == "resolved"]
    mttd = [s.mttd_s for s in faults if s.mttd_s is not None]
    mttr = [s.mttr_s for s in to_resolve if s.mttr_s is not None]

    def rate(part: list[ScenarioScore], ok: list[ScenarioScore]) -> float:
        return round(len(ok) / len(part), 3) if part else 1.0

    return SuiteSummary(
        scenarios=len(scores),
        faults=len(faults),
        controls=len(controls),
        detected_rate=rate(faults, [s for s in faults if s.detected]),
        diagnosis_rate=rate(faults, [s for s in faults if s.diagnosis_correct]),
        resolved_rate=rate(to_resolve, [s for s in to_resolve if s.resolved]),
        outcome_rate=rate(scores, [s for s in scores if s.outcome_correct]),
        false_actions=sum(s.false_actions for s in scores),
        control_actions=sum(s.actions for s in controls),
        median_mttd_s=round(statistics.median(mttd), 2) if mttd else None,
        median_mttr_s=round(statistics.median(mttr), 2) if mttr else None,
        max_mttr_s=max(mttr) if mttr else None,
    )
