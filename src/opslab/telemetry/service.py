"""Telemetry use cases, shared by the API and the CLI's local mode."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

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
from opslab.telemetry.otlp import Span, parse_request
from opslab.telemetry.ports import RunRepository
from opslab.telemetry.redact import Redactor
from opslab.telemetry.schema import ID_PATTERN, MAX_ID_LEN, AgentRunIn, RunOrigin, unstorable
from opslab.telemetry.timeline import build_timeline
from opslab.telemetry.views import (
    BatchItemResult,
    BatchResult,
    FleetSeries,
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

    def ingest(self, data: Any, *, source: RunOrigin = "native") -> IngestResult:
        prepared = prepare_run(parse_run(data), redactor=self.redactor, source=source)
        return self.store([prepared])[0]

    def ingest_runs(self, runs: Sequence[AgentRunIn], *, source: RunOrigin) -> list[IngestResult]:
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
            return self.ingest_batch(runs)
        parsed = prepare_many_json(raw, redactor=self.redactor)
        items = None
        if any(isinstance(p, InvalidInput) for p in parsed):
            # Only when an item failed: the raw items, so a failed item still names its run_id.
            decoded = from_json(raw)
            items = decoded if isinstance(decoded, list) and len(decoded) == len(parsed) else None
        return self._store_batch(parsed, items)

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
        """Keep the spans, then (re)map every trace they touch: children often arrive before parents.

        Each trace is mapped with its new spans *before* anything is stored: a span that cannot be
        stored, or that would make its trace unmappable (a time out of range, a token count no column
        holds), is rejected on its own (OTLP's partial success) and never poisons later exports."""
        spans = parse_request(body)
        by_trace: dict[str, list[Span]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        accepted: list[Span] = []
        rejected: list[str] = []
        runs: list[AgentRunIn] = []
        for trace_id in sorted(by_trace):
            stored = {s.span_id: s for s in self.repo.trace_spans(trace_id)}
            kept, trace_runs = _admit(stored, by_trace[trace_id], rejected)
            accepted.extend(kept)
            runs.extend(trace_runs)
        if accepted:
            self.repo.add_spans(accepted)
        results = self.ingest_runs(runs, source="otlp") if runs else []
        return OtlpResult(
            spans=len(accepted),
            traces=len({s.trace_id for s in accepted}),
            runs=results,
            rejected_spans=len(spans) - len(accepted),
            errors=rejected[:20],
        )

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

    def series(self, hours: int = 24, *, now: datetime | None = None) -> FleetSeries:
        if not 1 <= hours <= MAX_HOURS:
            raise InvalidInput.for_field("hours", f"must be between 1 and {MAX_HOURS}")
        since = (now or datetime.now(UTC)) - timedelta(hours=hours)
        return self.repo.series(since=since, hours=hours)


def _possible_id(run_id: str) -> bool:
    """Could a stored run have this id? (No: it is never looked up, so no database sees a NUL.)"""
    return 0 < len(run_id) <= MAX_ID_LEN and re.match(ID_PATTERN, run_id) is not None


def _mapped(spans: dict[str, Span]) -> list[AgentRunIn]:
    """The trace's runs, checked as ingest will check them; ``ValueError`` when it cannot be mapped."""
    try:
        runs = map_trace(spans.values())
        for run in runs:
            check_semantics(run)
    except (ValidationError, InvalidInput, OverflowError, ValueError) as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    return runs


def _admit(
    stored: dict[str, Span], new: list[Span], rejected: list[str]
) -> tuple[list[Span], list[AgentRunIn]]:
    """The new spans of one trace that can be stored and keep the trace mappable, and its runs then."""
    candidates = []
    for span in new:
        problem = unstorable(span.to_json())
        if problem:
            rejected.append(f"span {span.span_id}: {problem}")
        else:
            candidates.append(span)
    merged = {**stored, **{s.span_id: s for s in candidates}}
    try:
        return candidates, _mapped(merged)
    except ValueError:
        pass
    # Some new span breaks the trace: admit them one by one, keeping those the trace survives.
    kept: list[Span] = []
    current = dict(stored)
    runs: list[AgentRunIn] = []
    with contextlib.suppress(ValueError):
        runs = _mapped(current)
    for span in candidates:
        trial = {**current, span.span_id: span}
        try:
            runs = _mapped(trial)
        except ValueError as exc:
            rejected.append(f"span {span.span_id}: {exc}")
            continue
        current = trial
        kept.append(span)
    return kept, runs
