"""Read models of stored runs: what the API returns and the CLI prints."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from opslab.errors import InvalidInput
from opslab.telemetry.detail import NodeDetail
from opslab.telemetry.schema import NO_NUL, CostIn, Name, RunOrigin, RunStatus, UtcDatetime


class VersionStat(BaseModel):
    """How often runs of one agent version failed (for regressions between versions)."""

    version: str
    runs: int
    failures: int
    first_seen_order: int


class RunCounts(BaseModel):
    steps: int = 0
    tool_calls: int = 0
    failed_tool_calls: int = 0
    guardrail_events: int = 0


class RunSummary(BaseModel):
    run_id: str
    agent_name: str
    agent_version: str | None
    model: str | None
    environment: str | None
    started_at: datetime
    ended_at: datetime | None
    status: RunStatus
    error_type: str | None
    error_message: str | None
    trace_id: str | None
    correlation_ids: list[str]
    total_cost_usd: float | None
    tokens_prompt: int | None
    tokens_completion: int | None
    source: RunOrigin
    content_hash: str
    ingested_at: datetime
    counts: RunCounts
    session_id: str | None = None
    user_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    input: str | None = None
    output: str | None = None
    scores: list[ScoreView] = Field(default_factory=list)

    @computed_field(description="Token counts and cost as the run was ingested (``cost`` of AgentRunIn).")
    def cost(self) -> CostIn:
        return CostIn(
            tokens_prompt=self.tokens_prompt,
            tokens_completion=self.tokens_completion,
            total_cost_usd=self.total_cost_usd,
        )

    @computed_field(description="From started_at to ended_at, in milliseconds (None while unknown).")
    def duration_ms(self) -> float | None:
        if self.ended_at is None or self.ended_at < self.started_at:
            return None
        return (self.ended_at - self.started_at).total_seconds() * 1000


class RunFilter(BaseModel):
    status: RunStatus | None = None
    agent_name: Name | None = None
    model: Name | None = Field(None, description="Runs whose model is this one (the full name).")
    agent_version: Name | None = None
    environment: Name | None = None
    since: UtcDatetime | None = None
    until: UtcDatetime | None = Field(None, description="Runs started before this time.")
    experiment: Name | None = Field(None, description="Lab runs of this experiment (``lab.experiment``).")
    q: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="Free text, case-insensitive, in the run's input, output and error, its steps' input "
        "and output, and its failed tool calls' errors.",
    )
    session_id: Name | None = None
    user_id: Name | None = None
    tag: Name | None = None
    score: Name | None = Field(
        None, description="Runs with a score of this name (``score_min``/``score_max``)."
    )
    score_min: float | None = Field(None, allow_inf_nan=False)
    score_max: float | None = Field(None, allow_inf_nan=False)


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = None


TimelineKind = Literal["step", "tool_call", "guardrail", "log"]


class TimelineItem(BaseModel):
    kind: TimelineKind
    id: str
    started_at: datetime | None
    ended_at: datetime | None
    status: str
    summary: str
    step_id: str | None = Field(description="The step this item belongs to (a step links to itself).")
    name: str
    detail: NodeDetail | None = Field(
        None, description="All that was stored for it: messages, a tool call's arguments and result, errors."
    )


class Timeline(BaseModel):
    run_id: str
    items: list[TimelineItem]


class FailingTool(BaseModel):
    tool: str
    count: int


class Overview(BaseModel):
    hours: int
    total_runs: int
    success_rate: float | None = Field(
        description="Percent of runs with status success, 0-100 (null when there are no runs)."
    )
    top_failing_tools: list[FailingTool]
    p95_step_latency_ms: float | None
    total_cost_usd: float
    scores: list[ScoreStat] = Field(default_factory=list, description="Scores of the window's runs, by name.")


class SeriesPoint(BaseModel):
    """One bucket of the fleet over time: runs started in ``[at, at + bucket)``."""

    at: datetime
    runs: int
    successes: int
    success_rate: float | None = Field(description="Percent, 0-100 (null without runs).")
    cost_usd: float


class CostShare(BaseModel):
    key: str
    runs: int
    cost_usd: float


class FleetSeries(BaseModel):
    """The fleet over a window: runs and success rate per bucket, and cost by model and by agent."""

    hours: int
    bucket: Literal["hour", "day"]
    points: list[SeriesPoint]
    cost_by_model: list[CostShare]
    cost_by_agent: list[CostShare]


class IngestResult(BaseModel):
    run_id: str
    status: Literal["created", "updated"]
    content_hash: str


class BatchItemResult(BaseModel):
    index: int
    run_id: str | None
    status: Literal["created", "updated", "error"]
    error: dict[str, object] | None = None


class BatchResult(BaseModel):
    ok: int
    failed: int
    results: list[BatchItemResult]


class OtlpResult(BaseModel):
    spans: int
    traces: int
    runs: list[IngestResult] = Field(description="Runs created or updated from the traces touched.")
    rejected_spans: int = Field(0, description="Spans refused (OTLP partial success); the rest are kept.")
    errors: list[str] = Field(default_factory=list, description="Why spans were refused (first 20).")


class ScoreView(BaseModel):
    score_id: str
    run_id: str
    name: str
    value: float
    comment: str | None
    source: str
    created_at: datetime


class ScoreStat(BaseModel):
    """One score name over the runs of a window."""

    name: str
    count: int
    mean: float
    min: float
    max: float


TreeKind = Literal[
    "run", "step", "tool_call", "guardrail", "agent", "chain", "llm", "embedding", "tool", "retriever",
    "evaluator", "span",
]  # fmt: skip


class TreeNode(BaseModel):
    """One node of a run's trace tree, in depth-first order (``depth`` 0 is the run's root)."""

    id: str
    parent_id: str | None
    depth: int
    name: str
    kind: TreeKind
    failed: bool
    on_failing_path: bool = Field(description="This node failed, or a node below it did.")
    started_at: datetime | None
    ended_at: datetime | None
    latency_ms: float | None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    detail: NodeDetail | None = Field(
        None, description="All that was stored for it: messages, arguments, a span's attributes and events."
    )


class RunTree(BaseModel):
    """A run as a tree: its spans nested (OTLP runs), or its steps with their tool calls and events."""

    run_id: str
    source: Literal["spans", "run"]
    nodes: list[TreeNode]


class TraceSpanView(BaseModel):
    span_id: str
    parent_span_id: str | None
    name: str
    convention: str
    kind: str
    started_at: datetime | None
    ended_at: datetime | None
    failed: bool
    model: str | None
    tokens_in: int | None
    tokens_out: int | None
    run_id: str | None = Field(description="The run this span belongs to, or null with a reason.")
    reason: str | None = None


class TraceView(BaseModel):
    """Every stored span of a trace, each with its run or the reason it has none."""

    trace_id: str
    runs: list[str]
    spans: list[TraceSpanView]


class LogsResult(BaseModel):
    records: int
    stored: int = Field(description="Records with a trace id, kept as timeline events of that trace's runs.")
    dropped: int = Field(description="Records without a trace id: accepted and not kept.")


class MetricsResult(BaseModel):
    data_points: int = Field(
        description="Data points received: accepted and not kept (see docs/telemetry.md)."
    )


RunSummary.model_rebuild()
Overview.model_rebuild()


class PruneResult(BaseModel):
    deleted: int = Field(description="Runs deleted, each with everything kept for it.")
    older_than: str


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str, field: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s`` as a duration; anything else an ``InvalidInput`` naming
    ``field``."""
    value = text.strip().lower()
    if len(value) < 2 or value[-1] not in _UNITS or not value[:-1].isdigit() or int(value[:-1]) <= 0:
        raise InvalidInput.for_field(
            field, f"{text!r} is not a duration: a positive number and s, m, h, d or w (30d)"
        )
    seconds = int(value[:-1]) * _UNITS[value[-1]]
    if seconds > 100 * 366 * 86_400:
        raise InvalidInput.for_field(field, f"{text!r} is longer than a century")
    return timedelta(seconds=seconds)
