"""The read use cases of telemetry: one run (as stored, summarised, as a timeline, a tree, an export), a
trace, a page of runs, and the fleet's overview and series. ``TelemetryService`` inherits them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from opslab.errors import InvalidInput, NotFound
from opslab.telemetry.ports import RunRepository
from opslab.telemetry.prices import PriceTable
from opslab.telemetry.run_export import RunExport, otlp_export, run_export
from opslab.telemetry.schema import ID_PATTERN, MAX_ID_LEN, AgentRunIn
from opslab.telemetry.timeline import build_timeline
from opslab.telemetry.traces import map_trace
from opslab.telemetry.tree import describe_trace, tree_from_run, tree_from_spans
from opslab.telemetry.views import (
    FleetSeries,
    Overview,
    RunFilter,
    RunPage,
    RunSummary,
    RunTree,
    Timeline,
    TraceView,
    TreeKind,
    TreeNode,
)

MAX_HOURS = 10_000_000


class RunReads:
    """What is read back of stored runs and spans; an id no run could have is never looked up."""

    repo: RunRepository
    prices: PriceTable

    def trace(self, trace_id: str) -> TraceView:
        """Every stored span of a trace with the run it belongs to, or why it has none."""
        spans = self.repo.trace_spans(trace_id.lower()) if possible_id(trace_id) else []
        if not spans:
            raise NotFound(f"no spans of trace {trace_id!r}", details={"trace_id": trace_id})
        return describe_trace(trace_id.lower(), map_trace(spans, prices=self.prices))

    def tree(self, run_id: str) -> RunTree:
        """The run as a tree: its spans nested (OTLP runs) or its steps with their calls and events."""
        run = self.run(run_id)
        otel = run.attributes.get("otel") if isinstance(run.attributes.get("otel"), dict) else None
        root_id = otel.get("root_span_id") if otel else None
        if run.trace_id and root_id:
            mapped = map_trace(self.repo.trace_spans(run.trace_id), prices=self.prices)
            root = mapped.trace.spans.get(str(root_id))
            if root is not None:
                return tree_from_spans(run.run_id, mapped.trace, root)
        return tree_from_run(run)

    def node(self, run_id: str, node_id: str) -> TreeNode:
        """One node of the run — a span, a step, a tool call or a guardrail event — with everything
        stored for it (``NodeDetail``)."""
        for node in self.tree(run_id).nodes:
            if node.id == node_id:
                return node
        for item in self.timeline(run_id).items:
            if item.id == node_id and item.detail is not None:
                return TreeNode(
                    id=item.id,
                    parent_id=item.step_id if item.step_id != item.id else run_id,
                    depth=1,
                    name=item.name,
                    kind=_TIMELINE_KINDS.get(item.kind, "span"),
                    failed=item.status in ("failure", "timeout"),
                    on_failing_path=False,
                    started_at=item.started_at,
                    ended_at=item.ended_at,
                    latency_ms=None,
                    error=item.detail.error,
                    detail=item.detail,
                )
        raise NotFound(
            f"run {run_id!r} has no node {node_id!r}", details={"run_id": run_id, "node_id": node_id}
        )

    def export(self, run_id: str) -> RunExport:
        """The run and everything kept for it (``run_export``): its RCA reports are the caller's to add."""
        run = self.run(run_id)
        summary = self.summary(run_id)
        trace = run.trace_id.lower() if run.trace_id else None
        spans = self.repo.trace_spans(trace) if trace else []
        logs = self.repo.trace_logs(trace) if trace else []
        return run_export(run, summary, spans, logs)

    def export_otlp(self, run_id: str) -> dict[str, Any]:
        """The run as an OTLP/HTTP JSON export (see ``run_export.otlp_export``)."""
        run = self.run(run_id)
        otel = run.attributes.get("otel")
        spans = self.repo.trace_spans(run.trace_id.lower()) if run.trace_id and isinstance(otel, dict) else []
        if spans and run.trace_id:
            owned = map_trace(spans, prices=self.prices).owner
            spans = [s for s in spans if owned.get(s.span_id) == run.run_id]
        return otlp_export(run, spans)

    def summary(self, run_id: str) -> RunSummary:
        found = self.repo.get_summary(run_id) if possible_id(run_id) else None
        if found is None:
            raise NotFound(f"no agent run {run_id!r}", details={"run_id": run_id})
        return found

    def run(self, run_id: str) -> AgentRunIn:
        found = self.repo.load_run(run_id) if possible_id(run_id) else None
        if found is None:
            raise NotFound(f"no agent run {run_id!r}", details={"run_id": run_id})
        return found

    def timeline(self, run_id: str) -> Timeline:
        run = self.run(run_id)
        logs = self.repo.trace_logs(run.trace_id.lower()) if run.trace_id else []
        return build_timeline(run, logs)

    def list_runs(self, flt: RunFilter, *, cursor: str | None = None, limit: int = 50) -> RunPage:
        if not 1 <= limit <= 1000:
            raise InvalidInput.for_field("limit", "must be between 1 and 1000")
        return self.repo.list_runs(flt, cursor=cursor, limit=limit)

    def overview(self, hours: int = 24, *, now: datetime | None = None) -> Overview:
        if not 1 <= hours <= MAX_HOURS:
            raise InvalidInput.for_field("hours", f"must be between 1 and {MAX_HOURS}")
        since = (now or datetime.now(UTC)) - timedelta(hours=hours)
        return self.repo.overview(since=since, hours=hours)

    def series(self, hours: int = 24, *, now: datetime | None = None) -> FleetSeries:
        if not 1 <= hours <= MAX_HOURS:
            raise InvalidInput.for_field("hours", f"must be between 1 and {MAX_HOURS}")
        since = (now or datetime.now(UTC)) - timedelta(hours=hours)
        return self.repo.series(since=since, hours=hours)


_TIMELINE_KINDS: dict[str, TreeKind] = {"step": "step", "tool_call": "tool_call", "guardrail": "guardrail"}


def possible_id(run_id: str) -> bool:
    """Could a stored run have this id? (No: it is never looked up, so no database sees a NUL.)"""
    return 0 < len(run_id) <= MAX_ID_LEN and re.match(ID_PATTERN, run_id) is not None
