"""What the RCA routes answer and clients read: the report (a versioned, typed value whose hypotheses cite
evidence in its index), an RCA run (a job) with its report, and the answer to a create."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from opslab.wire.jobs import JobView, WireStatus

# 2: the report cites the runbook it used (``runbook``, ``Hypothesis.runbook_id``); version 1
# reports, stored before, have neither and still validate.
# 3: ``root_cause_step`` (1-based), ``responsible_agent``, ``alternatives`` and ``step_probability``.
# 4: ``outcome``, ``handled``, ``causal_chain``, ``summary_by`` and ``model_sentences``; categories are an
# open set (data: the built-in ones in opslab/rca/categories.yaml, a user's own beside them).
REPORT_SCHEMA_VERSION = 4

# A category id: one of the built-in failure categories (tool_schema_mismatch, rate_limited,
# tool_permission, timeout, context_window_overflow, wrong_tool_argument, unknown_tool, output_parse_error,
# step_limit_reached, retrieval_empty, planner_loop, prompt_regression, unknown), one a user added in their
# knowledge folder's rca-categories.yaml, or ``none`` for a run that did not fail.
Category = str
NO_FAILURE = "none"
Confidence = Literal["high", "medium", "low"]
EvidenceKind = Literal[
    "tool_call",
    "guardrail",
    "step",
    "run_error",
    "version_history",
    "signal",
    "candidate",
    "turn",
    "argument",
]


class Evidence(BaseModel):
    evidence_id: str
    kind: EvidenceKind
    ref_id: str
    title: str
    snippet: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    step_id: str | None = None
    at: datetime | None = None
    order: int = Field(0, description="Position in the run's timeline (earlier is smaller).")
    categories: list[Category] = Field(default_factory=list)


class Hypothesis(BaseModel):
    title: str
    description: str
    evidence_ids: list[str]
    confidence: Confidence
    verification_steps: list[str] = Field(default_factory=list)
    source: Literal["rules", "llm"] = "rules"
    runbook_id: str | None = Field(None, description="The knowledge-base runbook this hypothesis came from.")


class ActionItem(BaseModel):
    type: Literal["code_change", "config_change", "monitoring", "process", "investigation"]
    title: str
    description: str
    priority: Literal["high", "medium", "low"]


class RunbookRef(BaseModel):
    """The runbook a report's verification steps and actions come from (``opslab kb show ID``)."""

    id: str
    title: str


class RootCause(BaseModel):
    """The earliest decisive failure: where a reader of a long trace should look first."""

    step_id: str | None
    agent: str | None
    category: Category
    evidence_ids: list[str]
    at: datetime | None = None
    reason: str


class Alternative(BaseModel):
    """Another step that could be the decisive one, with the scorer's probability."""

    step: int
    step_id: str
    agent: str
    probability: float
    evidence_ids: list[str]


class HandledIssue(BaseModel):
    """Something that went wrong in the run and that the run dealt with: never its root cause."""

    evidence_id: str
    step_id: str | None = None
    what: str
    how: str = Field(description="How the run dealt with it: a retry that succeeded, a guardrail that acted.")


class ChainLink(BaseModel):
    """One link from the cause to the symptom: where a wrong value or decision entered, where it was
    carried, where it failed."""

    evidence_id: str
    step_id: str | None = None
    role: Literal["cause", "propagation", "symptom"]
    says: str


class RcaReport(BaseModel):
    schema_version: int = REPORT_SCHEMA_VERSION
    run_id: str
    outcome: Literal["failed", "succeeded"] = Field(
        "failed", description="A run that succeeded gets no root cause: only what it handled."
    )
    category: Category
    insufficient_evidence: bool
    insufficient_reason: str | None = None
    summary: str
    root_cause: RootCause | None = None
    root_cause_step: int | None = Field(None, description="The decisive step, 1-based in the run's order.")
    responsible_agent: str | None = Field(None, description="The agent who took the decisive step.")
    step_probability: float | None = Field(None, description="The localiser's probability for that step.")
    alternatives: list[Alternative] = Field(default_factory=list)
    evidence_index: list[Evidence]
    hypotheses: list[Hypothesis]
    confidence: Confidence
    verification_steps: list[str]
    action_items: list[ActionItem]
    generated_by: Literal["rules", "rules+llm"] = "rules"
    notes: list[str] = Field(default_factory=list)
    runbook: RunbookRef | None = Field(None, description="The runbook the steps and actions come from.")
    handled: list[HandledIssue] = Field(
        default_factory=list, description="Errors the run recovered from and guardrails that only acted."
    )
    causal_chain: list[ChainLink] = Field(
        default_factory=list, description="From the cause to the symptom, an evidence id at each link."
    )
    summary_by: Literal["rules", "model"] = Field(
        "rules", description="model: the summary is the model's sentences, each citing evidence ids."
    )
    model_sentences: list[str] = Field(
        default_factory=list, description="The model's sentences kept (each cites valid evidence ids)."
    )


class RcaRunCreated(BaseModel):
    rca_run_id: str
    run_id: str
    status: WireStatus
    created: bool = Field(description="False when an RCA of the same run content already existed.")


class RcaRunView(JobView):
    rca_run_id: str
    run_id: str | None = Field(description="The agent run analysed.")
    report: RcaReport | None = Field(None, description="The report, once the RCA is done.")


class RcaRunList(BaseModel):
    run_id: str
    items: list[RcaRunView]
