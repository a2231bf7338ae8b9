"""One trace's spans -> agent runs, whichever convention wrote them (``telemetry.conventions`` reads each).

- **Runs.** Every top-most agent-like span (OpenInference AGENT/CHAIN, OpenLLMetry workflow/agent, GenAI
  ``invoke_agent``, Langfuse agent/chain) is a run; a trace with none becomes one run from its top-most
  span. Run id = trace id (trace id + span id when a trace holds several runs). Spans above or beside an
  agent-like root belong to no run; ``describe_trace`` says so for each.
- **Inside a run**: tool spans are tool calls, guardrail spans (and span events named ``guardrail``) are
  guardrail events, every other descendant is a step (a nested agent is a step of its sub-agent).
- **Tokens are counted once** (``telemetry.trace_index``): a span's usage counts only when no span below
  it has any (leaf LLM spans win over an agent span that repeats their sum). Cost follows the same rule; a
  span with tokens and no cost of its own is priced from the price table by its model.
- **The model** is the one most LLM spans used (the root's when no LLM span names one).

Spans of one trace may arrive over several exports (children usually before their parent): the caller
keeps the spans and maps the whole trace again whenever one arrives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from opslab.telemetry.conventions import MODEL_KINDS, SpanFacts, status_message
from opslab.telemetry.messages import span_messages, text_of
from opslab.telemetry.otlp import SUMMARY_CHARS, Span
from opslab.telemetry.prices import PriceTable
from opslab.telemetry.schema import (
    MAX_ID_LEN,
    AgentRunIn,
    CostIn,
    GuardrailEventIn,
    StepIn,
    ToolCallIn,
    unstorable,
)
from opslab.telemetry.trace_index import Trace, Usage, span_time

# The index (``Trace``, ``Usage``, ``span_time``) lives in ``trace_index``; named here for the importers.
__all__ = ["RUN_TEXT_CHARS", "Trace", "TraceRuns", "Usage", "map_trace", "span_time"]

RUN_TEXT_CHARS = 20_000


@dataclass(slots=True)
class TraceRuns:
    runs: list[AgentRunIn]
    owner: dict[str, str]  # span id -> the run it belongs to
    trace: Trace


def map_trace(spans: Iterable[Span], *, prices: PriceTable | None = None) -> TraceRuns:
    """Every run of one trace's spans, and which run each span belongs to."""
    trace = Trace.of(spans, prices or PriceTable())
    roots = trace.run_roots()
    runs: list[AgentRunIn] = []
    owner: dict[str, str] = {}
    for root in roots:
        run_id = root.trace_id if len(roots) == 1 else f"{root.trace_id}-{root.span_id}"
        members = trace.subtree(root)
        for s in members:
            owner[s.span_id] = run_id
        runs.append(_map_run(trace, root, members, run_id))
    return TraceRuns(runs, owner, trace)


def _map_run(trace: Trace, root: Span, members: list[Span], run_id: str) -> AgentRunIn:
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

    steps: list[StepIn] = []
    calls: list[ToolCallIn] = []
    guards: list[GuardrailEventIn] = []
    call_by_span: dict[str, str] = {}
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
                ToolCallIn(
                    call_id=call_id,
                    step_id=owning_step(s),
                    tool_name=_tool_name(s, f),
                    status="failure" if f.failed else "success",
                    args_json=_args(f.tool_args),
                    result_summary=_clip(f.tool_result if f.tool_result is not None else f.output),
                    error_class=f.error_type,
                    error_message=(status_message(s) or None) if f.failed else None,
                    status_code=f.status_code,
                    latency_ms=latency,
                    started_at=start,
                    ended_at=end,
                )
            )
        elif f.kind == "guardrail":
            guards.append(
                GuardrailEventIn(
                    event_id=s.span_id,
                    type=str(s.attributes.get("guardrail.type") or s.name or "guardrail")[:MAX_ID_LEN],
                    message=status_message(s)
                    or _clip(f.output or s.attributes.get("guardrail.message"))
                    or "",
                    step_id=owning_step(s),
                    created_at=start,
                )
            )
        else:
            asked, answered = span_messages(s) if f.kind in MODEL_KINDS else ([], [])
            own = trace.own_usage(s.span_id) if f.kind in MODEL_KINDS else Usage()
            steps.append(
                StepIn(
                    step_id=s.span_id,
                    name=s.name[:MAX_ID_LEN] or f.kind,
                    status="failure" if f.failed else "success",
                    started_at=start,
                    ended_at=end,
                    latency_ms=latency,
                    input_summary=text_of(asked, role="user", last=True) or _clip(f.input),
                    output_summary=text_of(answered, last=True)
                    or _clip(f.output if f.output is not None else (status_message(s) or None)),
                    agent=_clip(f.agent_name),
                    kind=f.kind,
                    model=_short(f.model) if f.kind in MODEL_KINDS else None,
                    tokens_prompt=own.tokens_in,
                    tokens_completion=own.tokens_out,
                    input_messages=asked,
                    output_messages=answered,
                )
            )
    for s in members:
        for i, ev in enumerate(s.events):
            if ev["name"] != "guardrail":
                continue
            ea = ev["attributes"]
            guards.append(
                GuardrailEventIn(
                    event_id=f"{s.span_id}-ev{i}",
                    type=str(ea.get("guardrail.type") or ea.get("type") or "guardrail")[:MAX_ID_LEN],
                    message=str(ea.get("guardrail.message") or ea.get("message") or ""),
                    step_id=s.span_id if s.span_id in step_ids else owning_step(s),
                    call_id=call_by_span.get(s.span_id),
                    created_at=span_time(ev["time_ns"]),
                )
            )
    rf = facts[root.span_id]
    usage = trace.usage(root)[root.span_id]
    own = trace.own_usage(root.span_id)
    member_facts = [facts[s.span_id] for s in members]
    models = Counter(f.model for f in member_facts if f.kind in MODEL_KINDS and f.model)
    model = (
        models.most_common(1)[0][0]
        if models
        else rf.model or next((f.model for f in member_facts if f.model), None)
    )
    explicit_cost = any(f.cost_usd is not None for f in member_facts)
    tags = list(dict.fromkeys(t[:MAX_ID_LEN] for f in member_facts for t in f.tags if t.strip()))[:100]
    metadata: dict[str, Any] = {}
    for f in reversed(member_facts):  # the root's keys win
        metadata.update(f.metadata)
    prompts = sorted({f.prompt for f in member_facts if f.prompt})
    started = span_time(root.start_ns) or datetime.now(UTC)
    attributes: dict[str, Any] = {
        "otel": {
            "root_span_id": root.span_id,
            "service": root.resource.get("service.name"),
            "conventions": sorted({f.convention for f in member_facts}),
        }
    }
    if len(models) > 1:
        attributes["models"] = sorted(models)
    if prompts:
        attributes["prompts"] = prompts[:20]
    if usage.cost_usd is not None:
        attributes["cost_source"] = "trace" if explicit_cost else "price_table"
    return AgentRunIn(
        run_id=run_id,
        agent_name=_name(
            rf.agent_name
            or root.name.removeprefix("invoke_agent ").strip()
            or root.resource.get("service.name")
        ),
        agent_version=_short(rf.agent_version or root.resource.get("service.version")),
        model=_short(model),
        environment=_short(rf.environment),
        started_at=started,
        ended_at=span_time(root.end_ns) if root.end_ns >= root.start_ns else None,
        status="failure" if rf.failed else "success",
        error_type=rf.error_type,
        error_message=status_message(root) or None,
        trace_id=root.trace_id,
        correlation_ids=[_short(rf.conversation_id) or ""] if rf.conversation_id else [],
        steps=steps,
        tool_calls=calls,
        guardrail_events=guards,
        cost=CostIn(
            tokens_prompt=usage.tokens_in if usage.any else own.tokens_in,
            tokens_completion=usage.tokens_out if usage.any else own.tokens_out,
            total_cost_usd=round(usage.cost_usd, 8) if usage.cost_usd is not None else None,
        ),
        attributes=attributes,
        session_id=_short(next((f.session_id for f in member_facts if f.session_id), None)),
        user_id=_short(next((f.user_id for f in member_facts if f.user_id), None)),
        tags=tags,
        metadata=metadata if unstorable(metadata) is None else {},
        input=_clip(rf.input, RUN_TEXT_CHARS) or _conversation_end(steps, "input"),
        output=_clip(rf.output, RUN_TEXT_CHARS) or _conversation_end(steps, "output"),
    )


def _conversation_end(steps: list[StepIn], side: str) -> str | None:
    """A run's input (output) when its root span has none: what its first LLM call was asked (its last
    one answered), as instrumentations that record messages only on the LLM span write them."""
    calls = [s for s in steps if s.input_messages or s.output_messages]
    if not calls:
        return None
    if side == "input":
        return text_of(calls[0].input_messages, role="user", last=True) or text_of(calls[0].input_messages)
    return text_of(calls[-1].output_messages, last=True)


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
