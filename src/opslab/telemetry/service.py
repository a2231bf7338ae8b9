"""Telemetry use cases, shared by the API and the CLI's local mode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from opslab.errors import InvalidInput, NotFound
from opslab.telemetry.genai import map_trace
from opslab.telemetry.ingest import (
    PreparedRun,
    check_semantics,
    parse_run,
    prepare_many,
    prepare_many_json,
    prepare_run,
)
from opslab.telemetry.otlp import parse_request
from opslab.telemetry.ports import RunRepository
from opslab.telemetry.redact import Redactor
from opslab.telemetry.schema import AgentRunIn, RunSource
from opslab.telemetry.timeline import build_timeline
from opslab.telemetry.views import (
    BatchItemResult,
    BatchResult,
    IngestResult,
    OtlpResult,
    Overview,
    RunFilter,
    RunPage,
    RunSummary,
    Timeline,
)

MAX_HOURS = 10_000_000
IngestObserver = Callable[[Sequence[PreparedRun]], None]


class TelemetryService:
    def __init__(
        self, repo: RunRepository, *, redactor: Redactor, on_ingest: IngestObserver | None = None
    ) -> None:
        self.repo = repo
        self.redactor = redactor
        self._on_ingest = on_ingest

    def ingest(self, data: Any, *, source: RunSource = "native") -> IngestResult:
        prepared = prepare_run(parse_run(data), redactor=self.redactor, source=source)
        return self.store([prepared])[0]

    def ingest_runs(self, runs: Sequence[AgentRunIn], *, source: RunSource) -> list[IngestResult]:
        """Runs built in code (OTLP mapping, importers, lab trials): same checks, same redaction."""
        for run in runs:
            check_semantics(run)
        return self.store([prepare_run(r, redactor=self.redactor, source=source) for r in runs])

    def store(self, prepared: Sequence[PreparedRun]) -> list[IngestResult]:
        statuses = self.repo.upsert_runs(prepared)
        if self._on_ingest:
            self._on_ingest(prepared)
        return [
            IngestResult(run_id=p.run.run_id, status=statuses[p.run.run_id], content_hash=p.content_hash)
            for p in prepared
        ]

    def ingest_batch(self, items: Any) -> BatchResult:
        if not isinstance(items, list):
            raise InvalidInput.for_field("body", "expected a JSON array of agent runs")
        return self._store_batch(prepare_many(items, redactor=self.redactor), items)

    def ingest_batch_json(self, raw: bytes) -> BatchResult:
        """The batch route's path: validation straight from the request bytes."""
        parsed = prepare_many_json(raw, redactor=self.redactor)
        return self._store_batch(parsed, None)

    def _store_batch(self, parsed: list[PreparedRun | InvalidInput], items: list[Any] | None) -> BatchResult:
        good = [p for p in parsed if isinstance(p, PreparedRun)]
        statuses = self.repo.upsert_runs(good) if good else {}
        if good and self._on_ingest:
            self._on_ingest(good)
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

    def ingest_otlp(self, body: Any) -> OtlpResult:
        """Keep the spans, then (re)map every trace they touch: children often arrive before parents."""
        spans = parse_request(body)
        traces = self.repo.add_spans(spans) if spans else set()
        runs: list[AgentRunIn] = []
        for trace_id in sorted(traces):
            runs.extend(map_trace(self.repo.trace_spans(trace_id)))
        stored = self.ingest_runs(runs, source="otlp") if runs else []
        return OtlpResult(spans=len(spans), traces=len(traces), runs=stored)

    def summary(self, run_id: str) -> RunSummary:
        found = self.repo.get_summary(run_id)
        if found is None:
            raise NotFound(f"no agent run {run_id!r}", details={"run_id": run_id})
        return found

    def run(self, run_id: str) -> AgentRunIn:
        found = self.repo.load_run(run_id)
        if found is None:
            raise NotFound(f"no agent run {run_id!r}", details={"run_id": run_id})
        return found

    def timeline(self, run_id: str) -> Timeline:
        return build_timeline(self.run(run_id))

    def list_runs(self, flt: RunFilter, *, cursor: str | None = None, limit: int = 50) -> RunPage:
        if not 1 <= limit <= 1000:
            raise InvalidInput.for_field("limit", "must be between 1 and 1000")
        return self.repo.list_runs(flt, cursor=cursor, limit=limit)

    def overview(self, hours: int = 24, *, now: datetime | None = None) -> Overview:
        if not 1 <= hours <= MAX_HOURS:
            raise InvalidInput.for_field("hours", f"must be between 1 and {MAX_HOURS}")
        since = (now or datetime.now(UTC)) - timedelta(hours=hours)
        return self.repo.overview(since=since, hours=hours)
