"""Scoring root-cause localisation against annotated trajectories (the annotations: ``labels.py``).

A report *answers* when it names a root-cause step; it is *confident* when it answers with medium or
high confidence, and *confident-wrong* when it is confident and the step is off by more than one. Rates
are over all trajectories (an abstention counts against accuracy).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from opslab.rca.model import RcaReport
from opslab.rca.transcript import agent_key
from opslab.telemetry import agent_name


class Truth(BaseModel):
    """An annotation: the decisive step (1-based, the run's order) and the agent responsible."""

    trajectory_id: str
    step_number: int
    agent: str


class Scored(BaseModel):
    trajectory_id: str
    truth_step: int
    truth_agent: str
    predicted_step: int | None
    predicted_agent: str | None
    confidence: str
    probability: float | None = None  # the calibrated confidence, when the report gives one
    category: str


class Figures(BaseModel):
    """The headline: rates over all trajectories (an unanswered one counts against accuracy)."""

    n: int
    step_accuracy: float
    step_accuracy_pm1: float
    agent_accuracy: float
    insufficient_rate: float
    confident_wrong_rate: float


class EvalResult(Figures):
    missing: list[str] = []
    items: list[Scored] = []

    def headline(self) -> dict[str, Any]:
        return self.model_dump(
            include={
                "n",
                "step_accuracy",
                "step_accuracy_pm1",
                "agent_accuracy",
                "insufficient_rate",
                "confident_wrong_rate",
            }
        )


def same_agent(a: str | None, b: str | None) -> bool:
    """Names are the same agent when they differ only in case and separators (Websurfer = WebSurfer)."""
    return a is not None and b is not None and agent_key(agent_name(a)) == agent_key(agent_name(b))


def score(reports: dict[str, RcaReport], truth: dict[str, Truth]) -> EvalResult:
    """``reports`` by trajectory id; trajectories with no report count as unanswered."""
    items: list[Scored] = []
    for tid, t in sorted(truth.items()):
        report = reports.get(tid)
        answers = report is not None and not report.insufficient_evidence
        items.append(
            Scored(
                trajectory_id=tid,
                truth_step=t.step_number,
                truth_agent=t.agent,
                predicted_step=report.root_cause_step if report and answers else None,
                predicted_agent=report.responsible_agent if report and answers else None,
                confidence=report.confidence if report else "low",
                probability=report.step_probability if report else None,
                category=report.category if report else "unknown",
            )
        )
    return EvalResult(**summarise(items).model_dump(), missing=sorted(set(truth) - set(reports)), items=items)


def summarise(items: list[Scored]) -> Figures:
    """The rates over scored trajectories: one definition for the shipped and the cross-validated figures."""
    n = len(items)

    def rate(k: int) -> float:
        return round(k / n, 4) if n else 0.0

    answered = [s for s in items if s.predicted_step is not None]
    exact = sum(1 for s in answered if s.predicted_step == s.truth_step)
    near = sum(1 for s in answered if abs((s.predicted_step or 0) - s.truth_step) <= 1)
    agent_ok = sum(1 for s in answered if same_agent(s.predicted_agent, s.truth_agent))
    confident_wrong = sum(
        1
        for s in answered
        if s.confidence in ("high", "medium") and abs((s.predicted_step or 0) - s.truth_step) > 1
    )
    return Figures(
        n=n,
        step_accuracy=rate(exact),
        step_accuracy_pm1=rate(near),
        agent_accuracy=rate(agent_ok),
        insufficient_rate=rate(n - len(answered)),
        confident_wrong_rate=rate(confident_wrong),
    )
