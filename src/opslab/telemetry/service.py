"""Telemetry use cases, shared by the API and the CLI's local mode."""

from __future__ import annotations

import functools
import gc
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from pydantic import ValidationError
from pydantic_core import from_json

from opslab.errors import InvalidInput, NotFound, PayloadTooLarge, invalid_from_pydantic
from opslab.telemetry.exports import write_export
from opslab.telemetry.ingest import (
    PreparedRun,
    check_semantics,
    parse_run,
    parse_run_json,
    prepare_many,
    prepare_many_json,
    prepare_run,
)
from opslab.telemetry.otlp import parse_request
from opslab.telemetry.ports import RunRepository, UpsertStatus
from opslab.telemetry.prices import PriceTable, load_prices
from opslab.telemetry.redact import Redactor
from opslab.telemetry.run_export import RunExport, otlp_export, run_export
from opslab.telemetry.schema import ID_PATTERN, MAX_ID_LEN, AgentRunIn, RunOrigin, ScoreIn
from opslab.telemetry.signals import parse_logs
from opslab.telemetry.timeline import build_timeline
from opslab.telemetry.traces import map_trace
from opslab.telemetry.tree import describe_trace, tree_from_run, tree_from_spans
from opslab.telemetry.views import (
    BatchItemResult,
    BatchResult,
    FleetSeries,
    IngestResult,
    LogsResult,
    OtlpResult,
    Overview,
    RunFilter,
    RunPage,
    RunSummary,
    RunTree,
    ScoreView,
    Timeline,
    TraceView,
    TreeKind,
    TreeNode,
)

MAX_HOURS = 10_000_000


@dataclass(frozen=True)
class IngestLimits:
    """What one request may ask of ingest (``OPSLAB_MAX_BATCH_ITEMS``, ``OPSLAB_MAX_OTLP_SPANS``): bounded
    time and memory per request. Runs made in code (lab trials, importers) are not requests."""

    max_batch_items: int = 10_000
    max_otlp_spans: int = 10_000

    def check_batch(self, n: int) -> None:
        if n > self.max_batch_items:
            raise PayloadTooLarge(
                f"body: {n} runs in one batch; this service takes at most {self.max_batch_items} "
                "(OPSLAB_MAX_BATCH_ITEMS): send smaller batches",
                details={
                    "items": n,
                    "limit_items": self.max_batch_items,
                    "setting": "OPSLAB_MAX_BATCH_ITEMS",
                },
            )


IngestObserver = Callable[[Sequence[PreparedRun]], None]


P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is parsed and written: its tens of thousands of new
    objects (models, rows) are all alive until the batch is done, and freed by reference counting then,
    yet each collection on the way would walk them again (6 % of a batch's CPU)."""
    if not gc.isenabled():  # paused already (a nested call, another batch)
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _ingest_entry(
    method: Callable[Concatenate[TelemetryService, P], R],
) -> Callable[Concatenate[TelemetryService, P], R]:
    """An ingest entry point. It runs with the cyclic GC paused (``_cyclic_gc_paused``), and one at a
    time when the database takes one writer at a time (``RunRepository.one_writer``): two batches
    validated and written side by side on SQLite cost a quarter more CPU than one after the other (one
    thread's per-row writes wait for the GIL the other holds through a whole validation), and the
    database could not write them at once anyway."""

    def entry(self: TelemetryService, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._ingesting, _cyclic_gc_paused():
            return method(self, *args, **kwargs)

    functools.update_wrapper(entry, method)
    return entry


class TelemetryService:
    def __init__(
        self,
        repo: RunRepository,
        *,
        redactor: Redactor,
        on_ingest: IngestObserver | None = None,
        prices: PriceTable | None = None,
        limits: IngestLimits | None = None,
    ) -> None:
        self.repo = repo
        self.limits = limits or IngestLimits()
        self.redactor = redactor
        self._on_ingest = on_ingest
        self.prices = prices if prices is not None else load_prices()
        self._ingesting: AbstractContextManager[Any] = threading.RLock() if repo.one_writer else nullcontext()

    @_ingest_entry
    def ingest(self, data: Any, *, source: RunOrigin = "native") -> IngestResult:
        prepared = prepare_run(parse_run(data), redactor=self.redactor, source=source)
        return self.store([prepared])[0]

    @_ingest_entry
    def ingest_json(self, raw: bytes) -> IngestResult:
        """The single-run route's path: one validation pass straight from the request bytes."""
        prepared = prepare_run(parse_run_json(raw), redactor=self.redactor)
        return self.store([prepared])[0]

    @_ingest_entry
    def ingest_runs(self, runs: Sequence[AgentRunIn], *, source: RunOrigin) -> list[IngestResult]:
        """Runs built in code (OTLP mapping, importers, lab trials): same checks, same redaction."""
        for run in runs:
            check_semantics(run)
        return self.store([prepare_run(r, redactor=self.redactor, source=source) for r in runs])

    def store(self, prepared: Sequence[PreparedRun]) -> list[IngestResult]:
        self._price(prepared)
        statuses = self.repo.upsert_runs(prepared)
        self._observe(prepared, statuses)
        return [
            IngestResult(run_id=p.run.run_id, status=statuses[p.run.run_id], content_hash=p.content_hash)
            for p in prepared
        ]

    def _price(self, prepared: Sequence[PreparedRun]) -> None:
        """A run that names its model and tokens but no cost is priced from the price table, as an OTLP
        run is (``attributes.cost_source``: ``price_table``)."""
        for p in prepared:
            run = p.run
            if run.cost.total_cost_usd is not None or not run.model:
                continue
            cost = self.prices.cost(run.model, run.cost.tokens_prompt, run.cost.tokens_completion)
            if cost is not None:
                run.cost.total_cost_usd = round(cost, 8)
                run.attributes = {**run.attributes, "cost_source": "price_table"}

    def _observe(self, prepared: Sequence[PreparedRun], statuses: Mapping[str, UpsertStatus]) -> None:
        """Tell the observers (the ingest counter) of the runs stored for the first time: a run re-sent,
        or re-mapped when a late span of its trace arrives, is counted once."""
        created = [p for p in prepared if statuses.get(p.run.run_id) == "created"]
        if created and self._on_ingest:
            self._on_ingest(created)

    @_ingest_entry
    def ingest_batch(self, items: Any) -> BatchResult:
        if not isinstance(items, list):
            raise InvalidInput.for_field("body", "expected a JSON array of agent runs")
        return self._store_batch(prepare_many(items, redactor=self.redactor), items)

    @_ingest_entry
    def ingest_batch_json(self, raw: bytes) -> BatchResult:
        """The batch route's path: validation straight from the request bytes. The body is a JSON array
        of runs, or an object ``{"runs": [...]}``."""
        if raw.lstrip()[:1] == b"{":
            try:
                wrapped = from_json(raw, allow_inf_nan=False)
            except ValueError as exc:
                raise InvalidInput.for_field("body", f"malformed JSON: {exc}") from None
            runs = wrapped.get("runs") if isinstance(wrapped, dict) else None
            if not isinstance(runs, list) or set(wrapped) != {"runs"}:
                raise InvalidInput.for_field("runs", 'expected a JSON array of runs, or {"runs": [...]}')
            self.limits.check_batch(len(runs))
            return self.ingest_batch(runs)
        parsed = prepare_many_json(raw, redactor=self.redactor, check_count=self.limits.check_batch)
        items = None
        if any(isinstance(p, InvalidInput) for p in parsed):
            # Only when an item failed: the raw items, so a failed item still names its run_id.
            decoded = from_json(raw)
            items = decoded if isinstance(decoded, list) and len(decoded) == len(parsed) else None
        return self._store_batch(parsed, items)

    def _store_batch(self, parsed: list[PreparedRun | InvalidInput], items: list[Any] | None) -> BatchResult:
        good = [p for p in parsed if isinstance(p, PreparedRun)]
        self._price(good)
        statuses = self.repo.upsert_runs(good) if good else {}
        self._observe(good, statuses)
        results: list[BatchItemResult] = []
        for i, p in enumerate(parsed):
            if isinstance(p, PreparedRun):
                results.append(BatchItemResult(index=i, run_id=p.run.run_id, status=statuses[p.run.run_id]))
            else:
                item = items[i] if items is not None else None
                run_id = item.get("run_id") if isinstance(item, dict) else None
                results.append(
                    BatchItemResult(
                        index=i,
                        run_id=run_id if isinstance(run_id, str) else None,
                        status="error",
                        error=p.to_dict(),
                    )
                )
        return BatchResult(ok=len(good), failed=len(parsed) - len(good), results=results)

    @_ingest_entry
    def ingest_otlp(self, body: Any) -> OtlpResult:
        """Keep the spans, then (re)map every trace they touch (children often arrive before parents):
        spans and the runs they make are written in one transaction; a bad span is refused alone."""
        spans, rejected = parse_request(body, max_spans=self.limits.max_otlp_spans)

        def prepare(runs: Sequence[AgentRunIn]) -> list[PreparedRun]:
            return [prepare_run(r, redactor=self.redactor, source="otlp") for r in runs]

        kept, prepared, statuses = write_export(
            self.repo, spans, rejected, prices=self.prices, prepare=prepare
        )
        self._observe(prepared, statuses)
        runs = [
            IngestResult(run_id=p.run.run_id, status=statuses[p.run.run_id], content_hash=p.content_hash)
            for p in prepared
        ]
        return OtlpResult(
            spans=len(kept),
            traces=len({s.trace_id for s in kept}),
            runs=runs,
            rejected_spans=len(rejected),
            errors=rejected[:20],
        )

    @_ingest_entry
    def ingest_logs(self, body: Any) -> LogsResult:
        """OTLP log records: those naming a trace are kept as timeline events of its runs."""
        records, dropped = parse_logs(body)
        stored = self.repo.add_logs(records) if records else 0
        return LogsResult(records=len(records) + dropped, stored=stored, dropped=dropped)

    def trace(self, trace_id: str) -> TraceView:
        """Every stored span of a trace with the run it belongs to, or why it has none."""
        spans = self.repo.trace_spans(trace_id.lower()) if _possible_id(trace_id) else []
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

    @_ingest_entry
    def delete(self, run_id: str) -> None:
        """Delete a run with everything kept for it (``RunRepository.delete_runs``)."""
        if not _possible_id(run_id) or not self.repo.delete_runs([run_id]):
            raise NotFound(f"no agent run {run_id!r}", details={"run_id": run_id})

    def prune(self, *, older_than: timedelta, now: datetime | None = None, batch: int = 500) -> int:
        """Delete every run started more than ``older_than`` ago (retention), ``batch`` runs a
        transaction; how many were deleted."""
        if older_than <= timedelta(0):
            raise InvalidInput.for_field("older_than", "must be a positive duration")
        before = (now or datetime.now(UTC)) - older_than
        deleted = 0
        while ids := self.repo.runs_started_before(before, limit=batch):
            with self._ingesting:
                deleted += len(self.repo.delete_runs(ids))
        return deleted

    def add_score(self, run_id: str, data: Any) -> ScoreView:
        score = _parse_score(data)
        found = self.repo.add_score(run_id, score) if _possible_id(run_id) else None
        if found is None:
            raise NotFound(f"no agent run {run_id!r}", details={"run_id": run_id})
        return found

    def summary(self, run_id: str) -> RunSummary:
        found = self.repo.get_summary(run_id) if _possible_id(run_id) else None
        if found is None:
            raise NotFound(f"no agent run {run_id!r}", details={"run_id": run_id})
        return found

    def run(self, run_id: str) -> AgentRunIn:
        found = self.repo.load_run(run_id) if _possible_id(run_id) else None
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


def _possible_id(run_id: str) -> bool:
    """Could a stored run have this id? (No: it is never looked up, so no database sees a NUL.)"""
    return 0 < len(run_id) <= MAX_ID_LEN and re.match(ID_PATTERN, run_id) is not None


def _parse_score(data: Any) -> ScoreIn:
    if not isinstance(data, dict):
        raise InvalidInput.for_field("body", "expected a JSON object {name, value, comment, source}")
    try:
        return ScoreIn.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_pydantic(list(exc.errors(include_url=False))) from None
