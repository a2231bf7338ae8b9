"""A run taken out whole, to share it or move it (``GET /agent-runs/{id}/export``, ``opslab runs export``).

- **JSON** (``RunExport``): the run as ingested (``AgentRunIn``, which ``POST /agent-runs`` takes back),
  its summary, its trace's spans and log records, its scores; the API adds its RCA reports.
- **OTLP** (``otlp_export``): an ``ExportTraceServiceRequest`` (OTLP/HTTP JSON) any OpenTelemetry
  backend takes — this service's ``POST /v1/traces`` too: the spans as they were received for a run that
  came as spans, and for any other run spans made from it in the GenAI convention (the run an
  ``invoke_agent`` span, each step a span, an LLM step a ``chat`` span with its messages, each tool
  call an ``execute_tool`` span, a guardrail event a span event).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_json

from opslab.telemetry.otlp import Span
from opslab.telemetry.schema import SCHEMA_VERSION, AgentRunIn
from opslab.telemetry.signals import LogRecord
from opslab.telemetry.views import RunSummary, ScoreView

EXPORT_VERSION = 1


class ExportedLog(BaseModel):
    span_id: str | None
    at: datetime | None
    severity: str
    body: str
    attributes: dict[str, Any] = Field(default_factory=dict)


class RunExport(BaseModel):
    """One run and everything kept for it."""

    export_version: int = EXPORT_VERSION
    schema_version: int = Field(SCHEMA_VERSION, description="Of ``run`` (the agent-run schema).")
    exported_at: datetime
    run: AgentRunIn = Field(description="The run as POST /agent-runs takes it back.")
    summary: RunSummary
    spans: list[dict[str, Any]] = Field(default_factory=list, description="Its trace's spans, as kept.")
    logs: list[ExportedLog] = Field(default_factory=list)
    scores: list[ScoreView] = Field(default_factory=list)
    rca: list[dict[str, Any]] = Field(default_factory=list, description="Its RCA reports (the API's).")


def run_export(run: AgentRunIn, summary: RunSummary, spans: list[Span], logs: list[LogRecord]) -> RunExport:
    return RunExport(
        exported_at=datetime.now(UTC),
        run=run,
        summary=summary,
        spans=[s.to_json() for s in spans],
        logs=[
            ExportedLog(span_id=r.span_id, at=r.at, severity=r.severity, body=r.body, attributes=r.attributes)
            for r in logs
        ],
        scores=summary.scores,
    )


def otlp_export(run: AgentRunIn, spans: list[Span]) -> dict[str, Any]:
    """The run as an OTLP/HTTP JSON ``ExportTraceServiceRequest`` (see the module docstring)."""
    made = spans or _spans_of(run)
    by_resource: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for s in made:
        key = to_json(s.resource, fallback=str).decode()
        by_resource.setdefault(key, (s.resource, []))[1].append(_span_json(s))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource)},
                "scopeSpans": [{"scope": {"name": "opslab.export"}, "spans": spans_json}],
            }
            for resource, spans_json in by_resource.values()
        ]
    }


def _span_json(s: Span) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": s.trace_id,
        "spanId": s.span_id,
        "name": s.name,
        "startTimeUnixNano": str(s.start_ns),
        "endTimeUnixNano": str(s.end_ns),
        "attributes": _attributes(s.attributes),
        "status": {"code": 2, "message": s.status_message} if s.error else {"code": 1},
        "events": [
            {
                "name": ev["name"],
                "timeUnixNano": str(ev["time_ns"]),
                "attributes": _attributes(ev["attributes"]),
            }
            for ev in s.events
        ],
    }
    if s.parent_span_id:
        out["parentSpanId"] = s.parent_span_id
    return out


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in values.items() if v is not None]


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": _attributes(v)}}
    return {"stringValue": str(v)}


def _spans_of(run: AgentRunIn) -> list[Span]:
    """Spans in the GenAI convention made from a run that did not come as spans."""
    trace_id = run.trace_id if run.trace_id and len(run.trace_id) == 32 else _hex(run.run_id, 32)
    root_id = _hex(f"{run.run_id}/run", 16)
    resource = {
        "service.name": run.agent_name,
        **({"service.version": run.agent_version} if run.agent_version else {}),
    }

    def ns(at: datetime | None, fallback: datetime) -> int:
        return int((at or fallback).timestamp() * 1e9)

    start = run.started_at
    end = run.ended_at or start
    root_attrs: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": run.agent_name,
    }
    for key, value in (
        ("gen_ai.request.model", run.model),
        ("gen_ai.usage.input_tokens", run.cost.tokens_prompt),
        ("gen_ai.usage.output_tokens", run.cost.tokens_completion),
        ("gen_ai.usage.cost", run.cost.total_cost_usd),
        ("session.id", run.session_id),
        ("user.id", run.user_id),
        ("input.value", run.input),
        ("output.value", run.output),
        ("error.type", run.error_type),
    ):
        if value is not None:
            root_attrs[key] = value
    failed = run.status not in ("success", "running")
    spans = [
        Span(
            trace_id=trace_id,
            span_id=root_id,
            parent_span_id=None,
            name=f"invoke_agent {run.agent_name}",
            start_ns=ns(start, start),
            end_ns=ns(end, start),
            attributes=root_attrs,
            resource=resource,
            error=failed,
            status_message=run.error_message or "",
            events=[
                {
                    "name": "guardrail",
                    "time_ns": ns(g.created_at, start),
                    "attributes": {"guardrail.type": g.type, "guardrail.message": g.message},
                }
                for g in run.guardrail_events
            ],
        )
    ]
    step_span = {s.step_id: _hex(f"{run.run_id}/step/{s.step_id}", 16) for s in run.steps}
    for s in run.steps:
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat"} if s.kind == "llm" else {}
        for key, value in (
            ("gen_ai.request.model", s.model),
            ("gen_ai.usage.input_tokens", s.tokens_prompt),
            ("gen_ai.usage.output_tokens", s.tokens_completion),
            ("input.value", s.input_summary),
            ("output.value", s.output_summary),
            ("gen_ai.agent.name", s.agent),
        ):
            if value is not None:
                attrs[key] = value
        if s.input_messages:
            attrs["gen_ai.input.messages"] = _genai_messages(s.input_messages)
        if s.output_messages:
            attrs["gen_ai.output.messages"] = _genai_messages(s.output_messages)
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=step_span[s.step_id],
                parent_span_id=root_id,
                name=(f"chat {s.model}" if s.kind == "llm" and s.model else s.name or s.step_id),
                start_ns=ns(s.started_at, start),
                end_ns=ns(s.ended_at, s.started_at or start),
                attributes=attrs,
                resource=resource,
                error=s.status in ("failure", "timeout"),
                status_message=(s.output_summary or "") if s.status in ("failure", "timeout") else "",
                events=[],
            )
        )
    for c in run.tool_calls:
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": c.tool_name,
            "gen_ai.tool.call.id": c.call_id,
        }
        if c.args_json is not None:
            attrs["gen_ai.tool.call.arguments"] = to_json(c.args_json).decode()
        if c.result_summary is not None:
            attrs["gen_ai.tool.call.result"] = c.result_summary
        if c.error_class:
            attrs["error.type"] = c.error_class
        if c.status_code is not None:
            attrs["http.response.status_code"] = c.status_code
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=_hex(f"{run.run_id}/call/{c.call_id}", 16),
                parent_span_id=step_span.get(c.step_id or "", root_id),
                name=f"execute_tool {c.tool_name}",
                start_ns=ns(c.started_at, start),
                end_ns=ns(c.ended_at, c.started_at or start),
                attributes=attrs,
                resource=resource,
                error=c.status != "success",
                status_message=c.error_message or "",
                events=[],
            )
        )
    return spans


def _genai_messages(messages: list[Any]) -> str:
    out = []
    for m in messages:
        parts: list[dict[str, Any]] = []
        if m.content is not None:
            parts.append(
                {"type": "tool_call_response", "id": m.tool_call_id, "response": m.content}
                if m.tool_call_id
                else {"type": "text", "content": m.content}
            )
        parts += [
            {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls
        ]
        item: dict[str, Any] = {"role": m.role, "parts": parts}
        if m.finish_reason:
            item["finish_reason"] = m.finish_reason
        out.append(item)
    return to_json(out).decode()


def _hex(text: str, digits: int) -> str:
    """A stable id of ``digits`` hex digits (never all zeros)."""
    value = hashlib.sha256(text.encode()).hexdigest()[:digits]
    return value if value.strip("0") else "1".rjust(digits, "0")
