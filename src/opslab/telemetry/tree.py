"""A run as a tree: its spans nested with latency, tokens and cost each, and the failing path marked.

An OTLP run's tree is its spans under the run's root span; any other run's tree is the run, its steps, and
under each step its tool calls and guardrail events (those naming no step hang from the run).
"""

from __future__ import annotations

from datetime import datetime

from opslab.telemetry.conventions import status_message
from opslab.telemetry.detail import NodeDetail, call_detail, guardrail_detail, span_detail, step_detail
from opslab.telemetry.otlp import Span
from opslab.telemetry.schema import AgentRunIn
from opslab.telemetry.traces import Trace, TraceRuns, span_time
from opslab.telemetry.views import RunTree, TraceSpanView, TraceView, TreeKind, TreeNode

_SPAN_KINDS: dict[str, TreeKind] = {
    "agent": "agent", "chain": "chain", "llm": "llm", "embedding": "embedding", "tool": "tool",
    "retriever": "retriever", "guardrail": "guardrail", "evaluator": "evaluator", "span": "span",
}  # fmt: skip


def tree_from_spans(run_id: str, trace: Trace, root: Span) -> RunTree:
    nodes: list[TreeNode] = []
    depth = {root.span_id: 0}
    for s in trace.subtree(root):
        f = trace.facts[s.span_id]
        own = trace.own_usage(s.span_id)
        if s.span_id != root.span_id:
            depth[s.span_id] = depth.get(s.parent_span_id or "", 0) + 1
        nodes.append(
            TreeNode(
                id=s.span_id,
                parent_id=s.parent_span_id if s.span_id != root.span_id else None,
                depth=depth[s.span_id],
                name=s.name or f.kind,
                kind=_SPAN_KINDS[f.kind],
                failed=f.failed,
                on_failing_path=False,
                started_at=_at(s.start_ns),
                ended_at=_at(s.end_ns),
                latency_ms=(s.end_ns - s.start_ns) / 1e6 if s.start_ns and s.end_ns >= s.start_ns else None,
                model=f.model,
                tokens_in=own.tokens_in,
                tokens_out=own.tokens_out,
                cost_usd=own.cost_usd,
                error=(status_message(s) or f.error_type) if f.failed else None,
                detail=span_detail(s, f, tokens=(own.tokens_in, own.tokens_out), cost=own.cost_usd),
            )
        )
    return RunTree(run_id=run_id, source="spans", nodes=_mark_failing(nodes))


def tree_from_run(run: AgentRunIn) -> RunTree:
    def ms(start: datetime | None, end: datetime | None) -> float | None:
        return (end - start).total_seconds() * 1000 if start and end and end >= start else None

    root = TreeNode(
        id=run.run_id,
        parent_id=None,
        depth=0,
        name=run.agent_name,
        kind="run",
        failed=run.status != "success",
        on_failing_path=False,
        started_at=run.started_at,
        ended_at=run.ended_at,
        latency_ms=ms(run.started_at, run.ended_at),
        model=run.model,
        tokens_in=run.cost.tokens_prompt,
        tokens_out=run.cost.tokens_completion,
        cost_usd=run.cost.total_cost_usd,
        error=run.error_message if run.status != "success" else None,
        detail=NodeDetail(
            kind="run",
            input=run.input,
            output=run.output,
            error=run.error_message,
            error_class=run.error_type,
            model=run.model,
            tokens_in=run.cost.tokens_prompt,
            tokens_out=run.cost.tokens_completion,
            cost_usd=run.cost.total_cost_usd,
        ),
    )
    under: dict[str | None, list[TreeNode]] = {}
    for c in run.tool_calls:
        under.setdefault(c.step_id, []).append(
            TreeNode(
                id=c.call_id,
                parent_id=c.step_id or run.run_id,
                depth=2 if c.step_id else 1,
                name=c.tool_name,
                kind="tool_call",
                failed=c.status != "success",
                on_failing_path=False,
                started_at=c.started_at,
                ended_at=c.ended_at,
                latency_ms=c.latency_ms,
                error=c.error_message,
                detail=call_detail(c),
            )  # fmt: skip
        )
    for g in run.guardrail_events:
        under.setdefault(g.step_id, []).append(
            TreeNode(
                id=g.event_id,
                parent_id=g.step_id or run.run_id,
                depth=2 if g.step_id else 1,
                name=g.type,
                kind="guardrail",
                failed=False,
                on_failing_path=False,
                started_at=g.created_at,
                ended_at=g.created_at,
                latency_ms=None,
                error=None,
                detail=guardrail_detail(g),
            )  # fmt: skip
        )
    nodes = [root]
    for s in run.steps:
        nodes.append(
            TreeNode(
                id=s.step_id,
                parent_id=run.run_id,
                depth=1,
                name=s.name or s.step_id,
                kind="step",
                failed=s.status in ("failure", "timeout"),
                on_failing_path=False,
                started_at=s.started_at,
                ended_at=s.ended_at,
                latency_ms=s.latency_ms,
                error=s.output_summary if s.status in ("failure", "timeout") else None,
                model=s.model,
                tokens_in=s.tokens_prompt,
                tokens_out=s.tokens_completion,
                detail=step_detail(s),
            )  # fmt: skip
        )
        nodes.extend(under.pop(s.step_id, []))
    nodes.extend(n for kids in under.values() for n in kids)
    return RunTree(run_id=run.run_id, source="run", nodes=_mark_failing(nodes))


def _mark_failing(nodes: list[TreeNode]) -> list[TreeNode]:
    """A node is on the failing path when it failed or a node below it did (children follow parents)."""
    by_id = {n.id: n for n in nodes}
    for n in reversed(nodes):
        if n.failed:
            n.on_failing_path = True
        if n.on_failing_path and n.parent_id in by_id:
            by_id[n.parent_id].on_failing_path = True
    return nodes


def describe_trace(trace_id: str, mapped: TraceRuns) -> TraceView:
    """Every span of the trace with its run, or the reason it has none."""
    trace = mapped.trace
    spans: list[TraceSpanView] = []
    for s in sorted(trace.spans.values(), key=lambda s: (s.start_ns, s.span_id)):
        f = trace.facts[s.span_id]
        run_id = mapped.owner.get(s.span_id)
        reason = None
        if run_id is None:
            reason = (
                "outside every agent run: above or beside the trace's agent span(s), which start its runs"
                if mapped.runs
                else "no span of this trace can start a run (its spans' parents form a cycle)"
            )
        spans.append(
            TraceSpanView(
                span_id=s.span_id,
                parent_span_id=s.parent_span_id,
                name=s.name,
                convention=f.convention,
                kind=f.kind,
                started_at=_at(s.start_ns),
                ended_at=_at(s.end_ns),
                failed=f.failed,
                model=f.model,
                tokens_in=f.tokens_in,
                tokens_out=f.tokens_out,
                run_id=run_id,
                reason=reason,
            )  # fmt: skip
        )
    return TraceView(trace_id=trace_id, runs=[r.run_id for r in mapped.runs], spans=spans)


def _at(ns: int) -> datetime | None:
    try:
        return span_time(ns)
    except (OverflowError, ValueError, OSError):
        return None
