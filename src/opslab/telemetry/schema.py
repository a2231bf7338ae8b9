"""The agent-run wire contract (``POST /agent-runs``), exactly the seed's payload plus optional extensions.

Closed sets are ``Literal``; ids are path-safe and at most 200 characters. Unknown fields are refused so
that a typo never silently drops data. Every number is strict and bounded: integers fit the database's
32-bit columns, floats are finite, ``false`` is not 0 and ``"1.5"`` is not 1.5. Timestamps are RFC 3339
strings with a timezone (a bare number is refused, not read as Unix time) and fall in 1970–9999 once
converted to UTC. No text, anywhere in a run (``attributes`` and ``args_json`` included), may hold a NUL
character, and free-form values may not hold non-finite numbers: PostgreSQL stores neither, and the same
input must get the same answer on every database.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictFloat,
    StrictInt,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticSerializationError, to_json
from pydantic_core import core_schema as cs

# 2: an LLM step's kind, model, tokens and messages (StepIn); a schema 1 run is a schema 2 run.
SCHEMA_VERSION = 2
MAX_ID_LEN = 200
# Path segments the API gives a meaning of their own under /agent-runs/.
RESERVED_IDS = frozenset({"batch", "rca-runs"})
ZERO = timedelta(0)
# A run may say it started a little ahead of this service's clock (clocks drift), not more.
MAX_CLOCK_SKEW = timedelta(minutes=5)

RunStatus = Literal["success", "failure", "running", "timeout", "cancelled"]
StepStatus = Literal["success", "failure", "running", "timeout", "skipped"]
ToolStatus = Literal["success", "failure", "timeout"]
RunOrigin = Literal["native", "otlp", "import", "lab"]


# Ids end up in URLs and file names: no path separators, no control characters. Checked by pydantic's
# (Rust) pattern so that validating a large batch makes no Python call per id.
ID_PATTERN = r"^[^/\\\x00-\x1f\x7f]+$"
ID_PATTERN_MESSAGE = "must not contain path separators or control characters"

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN, pattern=ID_PATTERN)]
# No NUL: PostgreSQL text cannot hold it (checked by the Rust pattern engine, no Python call per field).
NO_NUL = r"^[^\x00]*$"
MAX_TEXT = 100_000
Text = Annotated[str, Field(max_length=MAX_TEXT, pattern=NO_NUL)]
Name = Annotated[str, Field(max_length=MAX_ID_LEN, pattern=NO_NUL)]
Tag = Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN, pattern=NO_NUL)]
INT_MAX = 2**31 - 1  # the database's INTEGER columns
Count = Annotated[StrictInt, Field(ge=0, le=INT_MAX)]
MAX_MILLIS = 1e12  # up to ~31 years; a cost's bound too
Millis = Annotated[StrictFloat, Field(ge=0, le=MAX_MILLIS, allow_inf_nan=False)]
MIN_YEAR, MAX_YEAR = 1970, 9999
MAX_MESSAGES = 200  # a side of an LLM call
MAX_PARTS = 100_000  # steps, tool calls, guardrail events of a run
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


_TIMESTAMP_MESSAGE = "expected an RFC 3339 timestamp string with a timezone, e.g. 2024-05-01T12:00:00Z"
_RANGE_MESSAGE = f"out of range: years {MIN_YEAR}–{MAX_YEAR} (UTC)"
_LOWEST = datetime(MIN_YEAR, 1, 1, tzinfo=UTC)
_HIGHEST = datetime(MAX_YEAR, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def _timestamp_text(value: Any) -> Any:
    # pydantic would read 12345 or "0.5" as Unix time: a number is almost always a unit mistake here.
    if isinstance(value, str) and ":" in value:  # a time of day: never a number (the common case, fast)
        return value
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        raise ValueError(_TIMESTAMP_MESSAGE)
    return value


def _in_range_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"out of range once converted to UTC (years {MIN_YEAR}–{MAX_YEAR})") from None
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(_RANGE_MESSAGE)
    return value


class _UtcTimestamp:
    """An aware timestamp in 1970–9999 (UTC). From JSON the checks run inside pydantic-core with no Python
    call (a string holding a time of day, parsed, compared with the bounds): a batch of thousands of runs
    pays nothing per timestamp in Python. From Python objects (code-built runs, query strings) the same
    rules run as two small Python validators."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        text = cs.custom_error_schema(
            cs.str_schema(strict=True, pattern=r"^[^\x00]*:[^\x00]*$"),
            custom_error_type="timestamp_text",
            custom_error_message=_TIMESTAMP_MESSAGE,
        )
        # Parsed and bounded in one step (its own messages name the bound: "Input should be greater than
        # or equal to 1970-01-01T00:00:00Z"); a separate bounds step costs a batch 7 % of its validation.
        from_json = cs.chain_schema(
            [text, cs.datetime_schema(tz_constraint="aware", ge=_LOWEST, le=_HIGHEST)]
        )
        from_python = cs.no_info_before_validator_function(
            _timestamp_text,
            cs.no_info_after_validator_function(_in_range_utc, cs.datetime_schema(tz_constraint="aware")),
        )
        return cs.json_or_python_schema(json_schema=from_json, python_schema=from_python)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time"}


UtcDatetime = Annotated[datetime, _UtcTimestamp]


_AFTER_START = "Not before started_at (422 naming this field)."


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, frozen=False)


class ToolCallMessage(_Model):
    """A tool call a model asked for, in an assistant message."""

    id: Name | None = None
    name: Name
    arguments: Text | None = Field(None, description="As the model wrote them (JSON text, usually).")


class Message(_Model):
    """One message of an LLM call: the same shape whichever convention recorded it."""

    role: Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)]
    content: Text | None = None
    tool_calls: list[ToolCallMessage] = Field(default_factory=list, max_length=100)
    tool_call_id: Name | None = Field(None, description="The tool call a tool message answers.")
    finish_reason: Name | None = None


class StepIn(_Model):
    step_id: Id
    name: Text = ""
    status: StepStatus
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = Field(None, description=_AFTER_START)
    input_summary: Text | None = None
    output_summary: Text | None = None
    retries: Count = 0
    latency_ms: Millis | None = None
    agent: Text | None = Field(default=None, description="Which agent acted (multi-agent traces).")
    # Since schema 2: what an LLM call step says of itself (all optional).
    kind: Annotated[str, Field(max_length=40, pattern=NO_NUL)] | None = Field(
        None, description="What the step is: llm (a model call), agent, chain, retriever, embedding, span…"
    )
    model: Name | None = Field(None, description="The model an LLM step called.")
    tokens_prompt: Count | None = None
    tokens_completion: Count | None = None
    input_messages: list[Message] = Field(
        default_factory=list, max_length=MAX_MESSAGES, description="An LLM call's prompt, as messages."
    )
    output_messages: list[Message] = Field(
        default_factory=list, max_length=MAX_MESSAGES, description="An LLM call's completion, as messages."
    )


class ToolCallIn(_Model):
    call_id: Id
    step_id: Id | None = Field(None, description="A step_id of this run's steps (422 otherwise).")
    tool_name: Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN, pattern=NO_NUL)]
    status: ToolStatus
    args_json: dict[str, Any] | list[Any] | None = None
    args_hash: Text | None = None
    result_summary: Text | None = None
    error_class: Text | None = None
    error_message: Text | None = None
    status_code: Annotated[StrictInt, Field(ge=0, le=999)] | None = None
    retries: Count = 0
    latency_ms: Millis | None = None
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = Field(None, description=_AFTER_START)


class GuardrailEventIn(_Model):
    event_id: Id
    type: Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN, pattern=NO_NUL)]
    message: Text = ""
    step_id: Id | None = None
    call_id: Id | None = None
    created_at: UtcDatetime | None = None


class CostIn(_Model):
    tokens_prompt: Count | None = None
    tokens_completion: Count | None = None
    total_cost_usd: Annotated[StrictFloat, Field(ge=0, le=MAX_MILLIS, allow_inf_nan=False)] | None = None


# The rules across fields that JSON Schema cannot state, each a 422 naming the field (check_semantics);
# the OpenAPI document lists them under ``x-opslab-rules`` of AgentRunIn and in the fields' descriptions.
CROSS_FIELD_RULES = (
    "ended_at (of the run, a step, a tool call) is not before its started_at",
    "no time is more than 5 minutes ahead of the service's clock",
    "step_id, call_id and event_id are unique within the run; no id is blank, '.' or '..'",
    "a tool call's step_id, and a guardrail event's step_id and call_id, name a step or call of the run",
    "run_id is not a reserved word of the API (e.g. 'batch', 'rca-runs')",
)


class AgentRunIn(_Model):
    """One agent run: the unit every capability shares (ingested, imported or produced by a lab trial)."""

    model_config = ConfigDict(json_schema_extra={"x-opslab-rules": list(CROSS_FIELD_RULES)})

    run_id: Id
    agent_name: Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN, pattern=NO_NUL)]
    agent_version: Name | None = None
    model: Name | None = None
    environment: Name | None = None
    started_at: UtcDatetime
    ended_at: UtcDatetime | None = Field(None, description=_AFTER_START)
    status: RunStatus
    error_type: Text | None = None
    error_message: Text | None = None
    trace_id: Name | None = None
    correlation_ids: list[Name] = Field(default_factory=list)
    steps: list[StepIn] = Field(default_factory=list, max_length=MAX_PARTS)
    tool_calls: list[ToolCallIn] = Field(default_factory=list, max_length=MAX_PARTS)
    guardrail_events: list[GuardrailEventIn] = Field(default_factory=list, max_length=MAX_PARTS)
    cost: CostIn = Field(default_factory=CostIn)
    attributes: dict[str, Any] = Field(default_factory=dict, description="Free-form extension data.")
    session_id: Name | None = Field(None, description="The conversation or session the run belongs to.")
    user_id: Name | None = Field(None, description="The end user the run served.")
    tags: list[Tag] = Field(default_factory=list, max_length=100, description="Labels to filter by.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Key-value metadata, shown with the run."
    )
    input: Text | None = Field(None, description="What the run was asked (searchable).")
    output: Text | None = Field(None, description="What the run answered (searchable).")


ScoreSource = Literal["user", "evaluator", "annotation", "api"]


class ScoreIn(_Model):
    """Feedback on a run: a user's thumbs, an evaluator's grade, an annotator's label."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_ID_LEN, pattern=NO_NUL)]
    value: Annotated[StrictFloat, Field(ge=-1e12, le=1e12, allow_inf_nan=False)]
    comment: Text | None = None
    source: ScoreSource = "api"


MAX_JSON_DEPTH = 250  # about what pydantic-core serialises


def unstorable(value: Any) -> str | None:
    """Why a free-form JSON value cannot be stored the same way on every database, or None.

    One serialisation in pydantic-core answers for almost every value (no NUL, no Infinity or NaN in its
    JSON text, not too deep to serialise); only a value whose text holds one of those is walked in Python
    to say where the problem is."""
    text = _json_text(value)
    if text is None:
        return _walk(value, 0) or f"nested more than {MAX_JSON_DEPTH} levels deep"
    return None if _plainly_storable(text) else _walk(value, 0)


def storable_json(value: Any) -> bytes | None:
    """``value`` as JSON when that text shows it storable (see ``unstorable``), else None: then ask
    ``unstorable`` of each part."""
    text = _json_text(value)
    return text if text is not None and _plainly_storable(text) else None


def _json_text(value: Any) -> bytes | None:
    try:
        return to_json(value, inf_nan_mode="constants", fallback=str)
    except (PydanticSerializationError, ValueError, RecursionError):  # too deep to serialise
        return None


def _plainly_storable(text: bytes) -> bool:
    # A text with no capital N holds no NaN (and most hold none): one scan fewer for most.
    return (
        b"\\u0000" not in text
        and (b"N" not in text or b"NaN" not in text)
        and (b"I" not in text or b"Infinity" not in text)
    )


def _walk(value: Any, depth: int) -> str | None:
    if isinstance(value, str):
        return "text must not contain NUL (\\u0000)" if "\x00" in value else None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite (no Infinity or NaN)"
    if depth > MAX_JSON_DEPTH:
        return f"nested more than {MAX_JSON_DEPTH} levels deep"
    if isinstance(value, dict):
        for k, v in value.items():
            problem = _walk(k, depth + 1) or _walk(v, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for v in value:
            problem = _walk(v, depth + 1)
            if problem:
                return problem
    return None


_BAD_IDS = frozenset({".", ".."})


def check_run(
    run: AgentRunIn, *, now: datetime | None = None, free_form: bool = True
) -> list[dict[str, str]]:
    """The checks pydantic cannot place on one field, and normalisation, in one pass per run.

    Returns the errors (field path + message); on success the run has every timestamp in UTC and
    step latencies derived from their times where missing. ``now`` (the service's clock) may be shared by
    a batch. Written for the common case, a valid run in UTC: it then costs a few set operations and one
    ``utcoffset`` per timestamp. The free-form values (tool arguments, attributes, metadata) are checked
    to be storable (``unstorable``) unless ``free_form`` is False: a batch that looked at all of its runs'
    values at once and found nothing to say.
    """
    errors: list[dict[str, str]] = []

    def err(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    def unique(ids: list[str], collection: str, field: str) -> set[str]:
        seen = set(ids)
        if len(seen) == len(ids) and not seen & _BAD_IDS and all(map(str.strip, ids)):
            return seen
        seen = set()
        for i, value in enumerate(ids):
            if value in seen:
                err(f"{collection}[{i}].{field}", f"{value!r} appears twice")
            if value in _BAD_IDS or not value.strip():
                err(f"{collection}[{i}].{field}", "must not be blank, '.' or '..'")
            seen.add(value)
        return seen

    if run.run_id in RESERVED_IDS:
        err("run_id", f"{run.run_id!r} is reserved")
    if run.run_id in _BAD_IDS or not run.run_id.strip():
        err("run_id", "must not be blank, '.' or '..'")
    _to_utc(run, ("started_at", "ended_at"))
    if run.ended_at and run.ended_at < run.started_at:
        err("ended_at", "is before started_at")
    ahead = (now or utcnow()) + MAX_CLOCK_SKEW
    for name in ("started_at", "ended_at"):
        at = getattr(run, name)
        if at is not None and at > ahead:
            err(name, "is in the future (more than 5 minutes ahead of the service's clock)")
    if len(run.tags) > 1 and len(set(run.tags)) < len(run.tags):
        run.tags = list(dict.fromkeys(run.tags))
    step_ids = unique([s.step_id for s in run.steps], "steps", "step_id")
    call_ids = unique([c.call_id for c in run.tool_calls], "tool_calls", "call_id")
    unique([g.event_id for g in run.guardrail_events], "guardrail_events", "event_id")
    for i, s in enumerate(run.steps):
        start, end = s.started_at, s.ended_at
        if start is not None and start.utcoffset():  # a zero offset is falsy: UTC already
            s.started_at = start = start.astimezone(UTC)
        if end is not None and end.utcoffset():
            s.ended_at = end = end.astimezone(UTC)
        if start and end:
            if end < start:
                err(f"steps[{i}].ended_at", "is before started_at")
            elif s.latency_ms is None:
                s.latency_ms = (end - start).total_seconds() * 1000
    for i, c in enumerate(run.tool_calls):
        start, end = c.started_at, c.ended_at
        if start is not None and start.utcoffset():
            c.started_at = start = start.astimezone(UTC)
        if end is not None and end.utcoffset():
            c.ended_at = end = end.astimezone(UTC)
        if start and end and end < start:
            err(f"tool_calls[{i}].ended_at", "is before started_at")
        if c.step_id is not None and c.step_id not in step_ids:
            err(f"tool_calls[{i}].step_id", f"{c.step_id!r} names no step")
    for i, g in enumerate(run.guardrail_events):
        at = g.created_at
        if at is not None and at.utcoffset():
            g.created_at = at.astimezone(UTC)
        if g.step_id is not None and g.step_id not in step_ids:
            err(f"guardrail_events[{i}].step_id", f"{g.step_id!r} names no step")
        if g.call_id is not None and g.call_id not in call_ids:
            err(f"guardrail_events[{i}].call_id", f"{g.call_id!r} names no tool call")
    if free_form:
        values = free_form_values(run)
        if values and unstorable([value for _, value in values]):
            for name, value in values:
                problem = unstorable(value)
                if problem:
                    err(name, problem)
    return errors


def free_form_values(run: AgentRunIn) -> list[tuple[str, Any]]:
    """The run's non-empty free-form JSON values (tool arguments, attributes, metadata), by field path."""
    values: list[tuple[str, Any]] = [
        (f"tool_calls[{i}].args_json", c.args_json) for i, c in enumerate(run.tool_calls) if c.args_json
    ]
    if run.attributes:
        values.append(("attributes", run.attributes))
    if run.metadata:
        values.append(("metadata", run.metadata))
    return values


def _to_utc(obj: BaseModel, fields: tuple[str, ...]) -> None:
    for name in fields:
        value = getattr(obj, name)
        if value is not None and value.utcoffset():  # assign only what changes: it is not free
            setattr(obj, name, value.astimezone(UTC))


def utcnow() -> datetime:
    return datetime.now(UTC)
