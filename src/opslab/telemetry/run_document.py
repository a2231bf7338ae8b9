"""One run of a trace as the document ``AgentRunIn`` validates: the mapping rules ``traces`` states, applied
to the spans below one root. Each part's keys come in its model's field order, defaults included, so the
document's JSON is the model's (``document_ingest`` fingerprints it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from opslab.telemetry.conventions import MODEL_KINDS, SpanFacts, status_message
from opslab.telemetry.messages import span_messages, text_of
from opslab.telemetry.otlp import SUMMARY_CHARS, Span
from opslab.telemetry.run_facts import RunFacts
from opslab.telemetry.schema import (
    MAX_ID_LEN,
    GuardrailEventIn,
    Message,
    StepIn,
    ToolCallIn,
    unstorable,
)
from opslab.telemetry.trace_index import NO_USAGE, Trace, span_time

RUN_TEXT_CHARS = 20_000

# The models a run is built of, in the order ``run_document`` builds their documents.
Built = list[tuple[type[BaseModel], dict[str, Any]]]


def run_document(trace: Trace, root: Span, members: list[Span], run_id: str, built: Built) -> dict[str, Any]:
    """The run ``root`` starts (``members``: its subtree); its parts are recorded in ``built`` as made."""
    desc = sorted(members[1:], key=lambda s: (s.start_ns, s.span_id))
    facts = trace.facts
    step_ids = {s.span_id for s in desc if facts[s.span_id].kind not in ("tool", "guardrail")}

    def owning_step(s: Span) -> str | None:
        parent = s.parent_span_id
        while parent and parent in trace.spans and parent != root.span_id:
            if parent in step_ids:
                return parent
            parent = trace.spans[parent].parent_span_id
        return None

    steps: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    guards: list[dict[str, Any]] = []
    conversation: list[tuple[list[Message], list[Message]]] = []  # the LLM steps' messages, in order
    call_by_span: dict[str, str] = {}
    # Each part's keys in its model's field order, defaults included: the document's JSON is the model's.
    for s in desc:
        f = facts[s.span_id]
        start, end = span_time(s.start_ns), span_time(s.end_ns)
        latency = (s.end_ns - s.start_ns) / 1e6 if s.start_ns and s.end_ns >= s.start_ns else None
        if f.kind == "tool":
            call_id = _ident(f.tool_call_id, s.span_id)
            if call_id in call_by_span.values():
                call_id = s.span_id
            call_by_span[s.span_id] = call_id
            calls.append(
                {
                    "call_id": call_id,
                    "step_id": owning_step(s),
                    "tool_name": _tool_name(s, f),
                    "status": "failure" if f.failed else "success",
                    "args_json": _args(f.tool_args),
                    "args_hash": None,
                    "result_summary": _clip(f.tool_result if f.tool_result is not None else f.output),
                    "error_class": f.error_type,
                    "error_message": (status_message(s) or None) if f.failed else None,
                    "status_code": f.status_code,
                    "retries": 0,
                    "latency_ms": latency,
                    "started_at": start,
                    "ended_at": end,
                }
            )
            built.append((ToolCallIn, calls[-1]))
        elif f.kind == "guardrail":
            guards.append(
                {
                    "event_id": s.span_id,
                    "type": str(s.attributes.get("guardrail.type") or s.name or "guardrail")[:MAX_ID_LEN],
                    "message": status_message(s)
                    or _clip(f.output or s.attributes.get("guardrail.message"))
                    or "",
                    "step_id": owning_step(s),
                    "call_id": None,
                    "created_at": start,
                }
            )
            built.append((GuardrailEventIn, guards[-1]))
        else:
            llm = f.kind in MODEL_KINDS
            asked, answered = span_messages(s) if llm else ([], [])
            own = trace.own_usage(s.span_id) if llm else NO_USAGE
            if asked or answered:
                conversation.append((asked, answered))
            output = text_of(answered, last=True) if answered else None
            if not output:
                if f.output is not None:
                    output = _clip(f.output)
                else:
                    message = status_message(s)
                    output = _clip(message) if message else None
            steps.append(
                {
                    "step_id": s.span_id,
                    "name": s.name[:MAX_ID_LEN] or f.kind,
                    "status": "failure" if f.failed else "success",
                    "started_at": start,
                    "ended_at": end,
                    "input_summary": (text_of(asked, role="user", last=True) if asked else None)
                    or (_clip(f.input) if f.input is not None else None),
                    "output_summary": output,
                    "retries": 0,
                    "latency_ms": latency,
                    "agent": _clip(f.agent_name) if f.agent_name is not None else None,
                    "kind": f.kind,
                    "model": _short(f.model) if llm else None,
                    "tokens_prompt": own.tokens_in,
                    "tokens_completion": own.tokens_out,
                    "input_messages": asked,
                    "output_messages": answered,
                }
            )
            built.append((StepIn, steps[-1]))
    for s in members:
        for i, ev in enumerate(s.events):
            if ev["name"] != "guardrail":
                continue
            ea = ev["attributes"]
            guards.append(
                {
                    "event_id": f"{s.span_id}-ev{i}",
                    "type": str(ea.get("guardrail.type") or ea.get("type") or "guardrail")[:MAX_ID_LEN],
                    "message": str(ea.get("guardrail.message") or ea.get("message") or ""),
                    "step_id": s.span_id if s.span_id in step_ids else owning_step(s),
                    "call_id": call_by_span.get(s.span_id),
                    "created_at": span_time(ev["time_ns"]),
                }
            )
            built.append((GuardrailEventIn, guards[-1]))
    rf = facts[root.span_id]
    together = RunFacts.of(facts[s.span_id] for s in members)
    usage = trace.usage(root, members)[root.span_id] if together.any_usage else NO_USAGE
    own = trace.own_usage(root.span_id)
    models = together.models
    model = models.most_common(1)[0][0] if models else rf.model or together.first_model
    started = span_time(root.start_ns) or datetime.now(UTC)
    attributes: dict[str, Any] = {
        "otel": {
            "root_span_id": root.span_id,
            "service": root.resource.get("service.name"),
            "conventions": together.conventions,
        }
    }
    if len(models) > 1:
        attributes["models"] = sorted(models)
    if together.prompts:
        attributes["prompts"] = together.prompts[:20]
    if usage.cost_usd is not None:
        attributes["cost_source"] = "trace" if together.explicit_cost else "price_table"
    metadata = together.metadata
    return {
        "run_id": run_id,
        "agent_name": _name(
            rf.agent_name
            or root.name.removeprefix("invoke_agent ").strip()
            or root.resource.get("service.name")
        ),
        "agent_version": _short(rf.agent_version or root.resource.get("service.version")),
        "model": _short(model),
        "environment": _short(rf.environment),
        "started_at": started,
        "ended_at": span_time(root.end_ns) if root.end_ns >= root.start_ns else None,
        "status": "failure" if rf.failed else "success",
        "error_type": rf.error_type,
        "error_message": status_message(root) or None,
        "trace_id": root.trace_id,
        "correlation_ids": [_short(rf.conversation_id) or ""] if rf.conversation_id else [],
        "steps": steps,
        "tool_calls": calls,
        "guardrail_events": guards,
        "cost": {
            "tokens_prompt": usage.tokens_in if usage.any else own.tokens_in,
            "tokens_completion": usage.tokens_out if usage.any else own.tokens_out,
            "total_cost_usd": round(usage.cost_usd, 8) if usage.cost_usd is not None else None,
        },
        "attributes": attributes,
        "session_id": _short(together.session_id),
        "user_id": _short(together.user_id),
        "tags": together.tags,
        "metadata": metadata if not metadata or unstorable(metadata) is None else {},
        "input": _clip(rf.input, RUN_TEXT_CHARS) or _conversation_end(conversation, "input"),
        "output": _clip(rf.output, RUN_TEXT_CHARS) or _conversation_end(conversation, "output"),
    }


def _conversation_end(conversation: list[tuple[list[Message], list[Message]]], side: str) -> str | None:
    """A run's input (output) when its root span has none: what its first LLM call was asked (its last
    one answered), as instrumentations that record messages only on the LLM span write them."""
    if not conversation:
        return None
    if side == "input":
        asked = conversation[0][0]
        return text_of(asked, role="user", last=True) or text_of(asked)
    return text_of(conversation[-1][1], last=True)


def _clip(value: Any, limit: int = SUMMARY_CHARS) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value[:limit]
    return to_json(value, fallback=str).decode()[:limit]


def _short(value: Any) -> str | None:
    return None if value in (None, "") else str(value)[:MAX_ID_LEN]


def _name(value: Any) -> str:
    return _short(value) or "agent"


def _ident(value: Any, fallback: str) -> str:
    text = str(value) if value not in (None, "") else fallback
    if len(text) > MAX_ID_LEN or "/" in text or "\\" in text or text in {".", ".."} or not text.isprintable():
        return fallback
    return text


def _tool_name(s: Span, f: SpanFacts) -> str:
    name = f.tool_name or s.name.removeprefix("execute_tool ").strip().removesuffix(".tool") or "tool"
    return name[:MAX_ID_LEN]


def _args(value: Any) -> dict[str, Any] | list[Any] | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return value if unstorable(value) is None else {"raw": _clip(value)}
    return {"raw": _clip(value)} if isinstance(value, str) else {"value": value}
