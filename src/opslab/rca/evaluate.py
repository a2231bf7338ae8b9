"""Scoring root-cause localisation against annotated trajectories (AgentRx's ground-truth format).

Each ground-truth record names its root-cause failure; that failure's ``step_number`` and
``failed_agent`` are the truth. A report *answers* when it names a root-cause step; it is
*confident* when it answers with medium or high confidence. Rates are over all trajectories.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opslab.errors import InvalidInput
from opslab.rca.model import RcaReport
from opslab.rca.transcript import agent_key
from opslab.telemetry import agent_name


class Truth(BaseModel):
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


def load_ground_truth(path: Path) -> dict[str, Truth]:
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput.for_field("--ground-truth", f"{path}: {exc}") from None
    if not isinstance(records, list):
        raise InvalidInput.for_field("--ground-truth", "expected a JSON list of AgentRx ground-truth records")
    out: dict[str, Truth] = {}
    for i, rec in enumerate(records):
        try:
            root_id = rec["root_cause"]["failure_id"]
            failure = next(f for f in rec["failures"] if str(f["failure_id"]) == str(root_id))
            out[str(rec["trajectory_id"])] = Truth(
                trajectory_id=str(rec["trajectory_id"]),
                step_number=int(failure["step_number"]),
                agent=str(failure["failed_agent"]),
            )
        except (KeyError, TypeError, StopIteration, ValueError):
            raise InvalidInput.for_field(
                f"--ground-truth[{i}]", "needs trajectory_id, failures and root_cause"
            ) from None
    return out


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
