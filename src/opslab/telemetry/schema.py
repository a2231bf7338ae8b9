"""The agent-run wire contract (``POST /agent-runs``), exactly the seed's payload plus optional extensions.

Closed sets are ``Literal``; timestamps must carry a timezone; ids are path-safe and at most 200
characters. Unknown fields are refused so that a typo never silently drops data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
MAX_ID_LEN = 200
# Path segments the API gives a meaning of their own under /agent-runs/.
RESERVED_IDS = frozenset({"batch", "rca-runs"})

RunStatus = Literal["success", "failure", "running", "timeout", "cancelled"]
StepStatus = Literal["success", "failure", "running", "timeout", "skipped"]
ToolStatus = Literal["success", "failure", "timeout"]
RunSource = Literal["native", "otlp", "import", "lab"]


def _check_id(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("must not be empty")
    if any(sep in value for sep in ("/", "\\")) or value in {".", ".."}:
        raise ValueError("must not contain path separators or be '.'/'..'")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _check_run_id(value: str) -> str:
    if value in RESERVED_IDS:
        raise ValueError(f"{value!r} is reserved")
    return _check_id(value)


Id = Annotated[str, Field(max_length=MAX_ID_LEN), AfterValidator(_check_id)]
RunId = Annotated[str, Field(max_length=MAX_ID_LEN), AfterValidator(_check_run_id)]
Text = Annotated[str, Field(max_length=100_000)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(lambda v: v.astimezone(UTC))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, frozen=False)


class StepIn(_Model):
    step_id: Id
    name: Text = ""
    status: StepStatus
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    input_summary: Text | None = None
    output_summary: Text | None = None
    retries: int = Field(default=0, ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    agent: Text | None = Field(default=None, description="Which agent acted (multi-agent traces).")

    @model_validator(mode="after")
    def _times_in_order(self) -> StepIn:
        if self.started_at and self.ended_at and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        if self.latency_ms is None and self.started_at and self.ended_at:
            self.latency_ms = (self.ended_at - self.started_at).total_seconds() * 1000
        return self


class ToolCallIn(_Model):
    call_id: Id
    step_id: Id | None = None
    tool_name: Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN)]
    status: ToolStatus
    args_json: dict[str, Any] | list[Any] | None = None
    args_hash: Text | None = None
    result_summary: Text | None = None
    error_class: Text | None = None
    error_message: Text | None = None
    status_code: int | None = Field(default=None, ge=0, le=999)
    retries: int = Field(default=0, ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None


class GuardrailEventIn(_Model):
    event_id: Id
    type: Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN)]
    message: Text = ""
    step_id: Id | None = None
    call_id: Id | None = None
    created_at: UtcDatetime | None = None


class CostIn(_Model):
    tokens_prompt: int | None = Field(default=None, ge=0)
    tokens_completion: int | None = Field(default=None, ge=0)
    total_cost_usd: float | None = Field(default=None, ge=0)


class AgentRunIn(_Model):
    """One agent run: the unit every capability shares (ingested, imported or produced by a lab trial)."""

    run_id: RunId
    agent_name: Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN)]
    agent_version: Annotated[str, Field(max_length=MAX_ID_LEN)] | None = None
    model: Annotated[str, Field(max_length=MAX_ID_LEN)] | None = None
    environment: Annotated[str, Field(max_length=MAX_ID_LEN)] | None = None
    started_at: UtcDatetime
    ended_at: UtcDatetime | None = None
    status: RunStatus
    error_type: Text | None = None
    error_message: Text | None = None
    trace_id: Annotated[str, Field(max_length=MAX_ID_LEN)] | None = None
    correlation_ids: list[Annotated[str, Field(max_length=MAX_ID_LEN)]] = Field(default_factory=list)
    steps: list[StepIn] = Field(default_factory=list, max_length=100_000)
    tool_calls: list[ToolCallIn] = Field(default_factory=list, max_length=100_000)
    guardrail_events: list[GuardrailEventIn] = Field(default_factory=list, max_length=100_000)
    cost: CostIn = Field(default_factory=CostIn)
    attributes: dict[str, Any] = Field(default_factory=dict, description="Free-form extension data.")

    @model_validator(mode="after")
    def _ends_after_start(self) -> AgentRunIn:
        if self.ended_at and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


def reference_errors(run: AgentRunIn) -> list[dict[str, str]]:
    """Ids that repeat or name nothing: the cross-field checks pydantic cannot place on a field."""
    errors: list[dict[str, str]] = []

    def unique(ids: list[str], collection: str, field: str) -> set[str]:
        seen: set[str] = set()
        for i, value in enumerate(ids):
            if value in seen:
                errors.append({"field": f"{collection}[{i}].{field}", "message": f"{value!r} appears twice"})
            seen.add(value)
        return seen

    step_ids = unique([s.step_id for s in run.steps], "steps", "step_id")
    call_ids = unique([c.call_id for c in run.tool_calls], "tool_calls", "call_id")
    unique([g.event_id for g in run.guardrail_events], "guardrail_events", "event_id")
    for i, call in enumerate(run.tool_calls):
        if call.step_id is not None and call.step_id not in step_ids:
            errors.append({"field": f"tool_calls[{i}].step_id", "message": f"{call.step_id!r} names no step"})
    for i, ev in enumerate(run.guardrail_events):
        if ev.step_id is not None and ev.step_id not in step_ids:
            errors.append(
                {"field": f"guardrail_events[{i}].step_id", "message": f"{ev.step_id!r} names no step"}
            )
        if ev.call_id is not None and ev.call_id not in call_ids:
            errors.append(
                {"field": f"guardrail_events[{i}].call_id", "message": f"{ev.call_id!r} names no tool call"}
            )
    return errors


def utcnow() -> datetime:
    return datetime.now(UTC)
