"""The responder's typed values: what it sees, what it concludes, what it does, and the incident record.

Everything here is a pydantic model (JSON at every boundary); the LangGraph state (``AgentState``)
holds only their JSON forms, so a checkpoint never depends on how a class pickles.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, Field, JsonValue

INCIDENT_SCHEMA_VERSION = 1

Risk = Literal["low", "medium", "high"]
Category = Literal[
    "db_pool_exhaustion",
    "bad_deploy",
    "latency_regression",
    "memory_leak",
    "dependency_outage",
    "target_down",
    "database_lock",
    "disk_full",
    "host_memory_pressure",
    "network_latency",
    "host_overload",
    "unknown",
]
CATEGORIES: tuple[Category, ...] = (
    "db_pool_exhaustion",
    "bad_deploy",
    "latency_regression",
    "memory_leak",
    "dependency_outage",
    "target_down",
    "database_lock",
    "disk_full",
    "host_memory_pressure",
    "network_latency",
    "host_overload",
    "unknown",
)
IncidentStatus = Literal["open", "resolved", "escalated", "awaiting_approval"]
Signal = Literal[
    "error_rate",
    "latency",
    "pool",
    "health",
    "memory",
    "dependency",
    "unreachable",
    "unresponsive",
    "hung",
    "disk",
    "host_memory",
]


class Assessment(BaseModel):
    """Detect's verdict on one observation: the signals out of bounds and whether an incident opens."""

    signals: list[Signal] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    explained: list[str] = Field(
        default_factory=list, description="Anomalies set aside with their explanation (a busy host)."
    )
    consecutive: int = 0
    is_incident: bool = False
    hard: bool = Field(
        False,
        description="A signal no load or experiment explains (gone, hung, failing checks, memory at its "
        "limit, errors over the threshold); without one, a high-risk action first waits for confirmation.",
    )

    @property
    def anomalous(self) -> bool:
        return bool(self.signals)


class Evidence(BaseModel):
    """A fact worth citing: ``obs:pool.utilization``, ``log:3``, ``trend:memory``."""

    evidence_id: str
    kind: Literal["observation", "log", "trend"]
    title: str
    value: str
    categories: list[Category] = Field(default_factory=list)


class Diagnosis(BaseModel):
    category: Category
    summary: str
    confidence: float = Field(ge=0.0, le=1.0)
    root_cause: str = ""
    evidence_ids: list[str] = Field(default_factory=list)
    runbook_id: str | None = None
    similar_incidents: list[str] = Field(default_factory=list)
    source: Literal["rules", "llm"] = "rules"
    notes: list[str] = Field(default_factory=list)


class ActionSpec(BaseModel):
    name: str
    description: str = ""
    risk: Risk = "low"
    params_schema: dict[str, JsonValue] = Field(default_factory=dict)


class PlannedAction(BaseModel):
    name: str
    params: dict[str, JsonValue] = Field(default_factory=dict)
    risk: Risk = "low"
    reason: str = ""
    runbook_id: str | None = None

    @property
    def key(self) -> str:
        """Identity for "already tried": the name and its parameters."""
        args = ",".join(f"{k}={self.params[k]}" for k in sorted(self.params))
        return f"{self.name}({args})"


class ActionResult(BaseModel):
    """An action's outcome as a value: a failed action is ``status="error"``, never an exception."""

    action: str
    params: dict[str, JsonValue] = Field(default_factory=dict)
    status: Literal["success", "error"]
    detail: str = ""
    id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempt: int = 0
    risk: Risk | None = Field(None, description="What the action server's catalog says the action risks.")


class Step(BaseModel):
    at: datetime
    node: str
    message: str


class ToolUse(BaseModel):
    """A call the workflow made: a probe, a retrieval, an LLM call or an action (for telemetry)."""

    at: datetime
    node: str
    tool: str
    status: Literal["success", "error"] = "success"
    args: dict[str, JsonValue] = Field(default_factory=dict)
    detail: str = ""


class AuditRecord(BaseModel):
    """One decision or action, appended and never rewritten."""

    schema_version: int = 1
    at: datetime
    incident_id: str | None
    decision: str = Field(description="opened, planned, approval_required, approved, executed, ...")
    detail: str = ""
    action: str | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)


class Hold(BaseModel):
    """Why an incident's response waits, and until when: a delay, never a verdict. When it ends and the
    fault is still there, the responder acts on the incident again."""

    reason: Literal["cooldown", "kill_switch", "confirm"] = Field(
        description="cooldown: the action ran lately; kill_switch: the responder is halted; confirm: a "
        "high-risk action on a diagnosis not yet sure enough, or a diagnosis on trends only too unsure to "
        "act on (action `more-evidence`), waits to see the fault outlive it."
    )
    action: str | None = Field(None, description="The action waited for (its key).")
    since: datetime
    until: datetime | None = Field(None, description="None: until the kill switch is released.")
    detail: str = ""


class Incident(BaseModel):
    schema_version: int = INCIDENT_SCHEMA_VERSION
    id: str
    status: IncidentStatus = "open"
    category: Category | None = None
    categories: list[Category] = Field(
        default_factory=list, description="Every diagnosis in order (a partial fix can reveal a second)."
    )
    diagnosis: Diagnosis | None = None
    confidence: float = 0.0
    root_cause: str = ""
    actions: list[ActionResult] = Field(default_factory=list)
    pending_action: PlannedAction | None = None
    held: Hold | None = Field(None, description="Set while the response waits (a cooldown, the kill switch).")
    recommendation: str = ""
    signals: list[Signal] = Field(default_factory=list)
    opened_at: datetime
    resolved_at: datetime | None = None
    learned_document: str | None = None
    attempts: int = 0
    steps: list[Step] = Field(default_factory=list)
    tools: list[ToolUse] = Field(default_factory=list)
    version: int = Field(
        default=0,
        description="How many times the incident was saved (0: never). A save names the version it read; "
        "one that another writer got to first is refused (IncidentChanged), never last-writer-wins.",
    )

    @property
    def finished(self) -> bool:
        return self.status in ("resolved", "escalated")


class ProgressEvent(BaseModel):
    """What a workflow step reports (an SSE stream forwards these)."""

    incident_id: str
    node: str
    message: str
    at: datetime
    status: IncidentStatus | None = None


class AgentState(TypedDict, total=False):
    """The LangGraph state: the seed's fields, then the incident's own (JSON values only)."""

    symptoms: dict[str, Any]
    diagnosis: str
    confidence: float
    root_cause: str
    action_plan: list[dict[str, Any]]
    execution_results: list[dict[str, Any]]
    is_resolved: bool
    recommendation: str
    # the incident's own
    incident_id: str
    incident: dict[str, Any] | None
    observation: dict[str, Any]
    assessment: dict[str, Any]
    is_unhealthy: bool
    evidence: list[dict[str, Any]]
    diagnosis_detail: dict[str, Any]
    tried: list[str]
    attempts: int
    outcome: str
    history: list[dict[str, Any]]
    baseline: dict[str, Any]
    polls: int
    next_action: dict[str, Any] | None
    needs_approval: bool
    verify_signals: list[str]
    verify_reasons: list[str]
    verify_worse: bool
    worse_category: str | None  # the problem the last action made worse (re-diagnosed before planning)
    waited: list[str]  # high-risk actions whose confirmation wait was served


class ResponderStatus(BaseModel):
    """What ``GET /agent/status`` shows: what the responder is doing and what it last saw."""

    state: Literal["watching", "responding", "halted", "not_configured", "disabled"]
    halted: bool = False
    dry_run: bool = False
    last_observation: dict[str, JsonValue] | None = None
    last_assessment: Assessment | None = None
    baseline: dict[str, JsonValue] = Field(default_factory=dict)
    open_incidents: list[str] = Field(default_factory=list)
    awaiting_approval: list[str] = Field(default_factory=list)
