"""OpenTelemetry GenAI spans -> agent runs.

Input is spans parsed by ``telemetry.otlp``. Mapping, per the GenAI semantic conventions:

- a top-most ``invoke_agent`` span is a run (``gen_ai.agent.name``/``.version``, ``gen_ai.request.model``);
- ``execute_tool`` spans are tool calls (``gen_ai.tool.name``, ``gen_ai.tool.call.id``,
  ``gen_ai.tool.call.arguments``, ``error.type``, ``http.response.status_code``);
- spans with ``openinference.span.kind = GUARDRAIL``, and span events named ``guardrail``, are
  guardrail events;
- every other descendant span is a step (nested ``invoke_agent`` spans are steps of the sub-agent);
- ``gen_ai.usage.input_tokens``/``output_tokens`` add up to the run's token counts;
- span status ERROR means failure.

Spans of one trace may arrive over several exports (children usually before their parent), so the
caller keeps spans and re-maps a whole trace whenever one of its spans arrives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from opslab.telemetry.otlp import SUMMARY_CHARS, Span
from opslab.telemetry.schema import MAX_ID_LEN, AgentRunIn, CostIn, GuardrailEventIn, StepIn, ToolCallIn


def _ts(ns: int) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, UTC) if ns else None


def _clip(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:SUMMARY_CHARS]


def _ident(value: Any, fallback: str) -> str:
    text = str(value) if value not in (None, "") else fallback
    if len(text) > MAX_ID_LEN or "/" in text or "\\" in text or text in {".", ".."}:
        return fallback
    return text


def map_trace(spans: Iterable[Span]) -> list[AgentRunIn]:
    """All runs found in one trace's spans: one per top-most ``invoke_agent`` span."""
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = {}
    for s in by_id.values():
        if s.parent_span_id:
            children.setdefault(s.parent_span_id, []).append(s)

    def has_agent_ancestor(s: Span) -> bool:
        seen: set[str] = set()
        parent = s.parent_span_id
        while parent and parent in by_id and parent not in seen:
            seen.add(parent)
            if by_id[parent].operation == "invoke_agent":
                return True
            parent = by_id[parent].parent_span_id
        return False

    roots = [s for s in by_id.values() if s.operation == "invoke_agent" and not has_agent_ancestor(s)]
    roots.sort(key=lambda s: (s.start_ns, s.span_id))
    return [_map_run(root, children, multiple=len(roots) > 1) for root in roots]


def _descendants(root: Span, children: dict[str, list[Span]]) -> list[Span]:
    out: list[Span] = []
    stack = list(children.get(root.span_id, []))
    seen = {root.span_id}
    while stack:
        s = stack.pop()
        if s.span_id in seen:
            continue
        seen.add(s.span_id)
        out.append(s)
        stack.extend(children.get(s.span_id, []))
    out.sort(key=lambda s: (s.start_ns, s.span_id))
    return out


def _kind(s: Span) -> str:
    if str(s.attributes.get("openinference.span.kind", "")).upper() == "GUARDRAIL":
        return "guardrail"
    if s.operation == "execute_tool":
        return "tool"
    return "step"


def _map_run(root: Span, children: dict[str, list[Span]], *, multiple: bool) -> AgentRunIn:
    desc = _descendants(root, children)
    by_id = {s.span_id: s for s in desc}
    step_ids = {s.span_id for s in desc if _kind(s) == "step"}

    def owning_step(s: Span) -> str | None:
        parent = s.parent_span_id
        while parent and parent in by_id:
            if parent in step_ids:
                return parent
            parent = by_id[parent].parent_span_id
        return None

    steps: list[StepIn] = []
    calls: list[ToolCallIn] = []
    guards: list[GuardrailEventIn] = []
    used_call_ids: set[str] = set()
    tokens_in = tokens_out = 0
    for s in [root, *desc]:
        tokens_in += int(s.attributes.get("gen_ai.usage.input_tokens") or 0)
        tokens_out += int(s.attributes.get("gen_ai.usage.output_tokens") or 0)
    for s in desc:
        kind, a = _kind(s), s.attributes
        start, end = _ts(s.start_ns), _ts(s.end_ns)
        latency = (s.end_ns - s.start_ns) / 1e6 if s.start_ns and s.end_ns >= s.start_ns else None
        if kind == "step":
            steps.append(
                StepIn(
                    step_id=s.span_id,
                    name=s.name[:MAX_ID_LEN] or s.operation,
                    status="failure" if s.error else "success",
                    started_at=start,
                    ended_at=end,
                    latency_ms=latency,
                    input_summary=_clip(a.get("gen_ai.input.messages") or a.get("input.value")),
                    output_summary=_clip(
                        a.get("gen_ai.output.messages") or a.get("output.value") or s.status_message or None
                    ),
                    agent=_clip(a.get("gen_ai.agent.name")),
                )
            )
        elif kind == "tool":
            call_id = _ident(a.get("gen_ai.tool.call.id"), s.span_id)
            if call_id in used_call_ids:
                call_id = s.span_id
            used_call_ids.add(call_id)
            raw_args = a.get("gen_ai.tool.call.arguments")
            try:
                args = json.loads(raw_args) if isinstance(raw_args, str) else raw_args
            except ValueError:
                args = {"raw": raw_args}
            if args is not None and not isinstance(args, dict | list):
                args = {"value": args}
            error_type = a.get("error.type")
            failed = s.error or bool(error_type)
            status_code = a.get("http.response.status_code")
            calls.append(
                ToolCallIn(
                    call_id=call_id,
                    step_id=owning_step(s),
                    tool_name=str(
                        a.get("gen_ai.tool.name") or s.name.removeprefix("execute_tool ").strip() or "tool"
                    )[:MAX_ID_LEN],
                    status="failure" if failed else "success",
                    args_json=args,
                    result_summary=_clip(a.get("gen_ai.tool.call.result") or a.get("output.value")),
                    error_class=str(error_type) if error_type else None,
                    error_message=(s.status_message or _exception_message(s)) if failed else None,
                    status_code=int(status_code)
                    if isinstance(status_code, int | str) and str(status_code).isdigit()
                    else None,
                    latency_ms=latency,
                    started_at=start,
                    ended_at=end,
                )
            )
        else:
            guards.append(
                GuardrailEventIn(
                    event_id=s.span_id,
                    type=str(a.get("guardrail.type") or s.name or "guardrail")[:MAX_ID_LEN],
                    message=s.status_message
                    or _clip(a.get("output.value") or a.get("guardrail.message"))
                    or "",
                    step_id=owning_step(s),
                    created_at=start,
                )
            )
    call_by_span = {
        s.span_id: c.call_id for s, c in zip([d for d in desc if _kind(d) == "tool"], calls, strict=True)
    }
    for s in [root, *desc]:
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
                    created_at=_ts(ev["time_ns"]),
                )
            )
    a = root.attributes
    error_type = a.get("error.type")
    conversation = a.get("gen_ai.conversation.id")
    env = root.resource.get("deployment.environment.name") or root.resource.get("deployment.environment")
    started = _ts(root.start_ns) or datetime.now(UTC)
    return AgentRunIn(
        run_id=f"{root.trace_id}-{root.span_id}" if multiple else root.trace_id,
        agent_name=str(
            a.get("gen_ai.agent.name")
            or root.name.removeprefix("invoke_agent ").strip()
            or root.resource.get("service.name")
            or "agent"
        )[:MAX_ID_LEN],
        agent_version=_clip(a.get("gen_ai.agent.version")),
        model=_clip(a.get("gen_ai.request.model") or a.get("gen_ai.response.model")),
        environment=str(env)[:MAX_ID_LEN] if env else None,
        started_at=started,
        ended_at=_ts(root.end_ns) if root.end_ns >= root.start_ns else None,
        status="failure" if root.error or error_type else "success",
        error_type=str(error_type) if error_type else None,
        error_message=(root.status_message or _exception_message(root)) or None,
        trace_id=root.trace_id,
        correlation_ids=[str(conversation)] if conversation else [],
        steps=steps,
        tool_calls=calls,
        guardrail_events=guards,
        cost=CostIn(tokens_prompt=tokens_in or None, tokens_completion=tokens_out or None),
        attributes={"otel": {"root_span_id": root.span_id, "service": root.resource.get("service.name")}},
    )


def _exception_message(s: Span) -> str:
    for ev in s.events:
        if ev["name"] == "exception":
            return str(ev["attributes"].get("exception.message") or "")
    return ""
