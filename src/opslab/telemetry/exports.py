"""OTLP trace exports -> stored spans and the runs they make, in one transaction per export.

Each trace an export touches is mapped with its new spans *before* anything is stored: a span that cannot
be stored, or that would make its trace unmappable (a time out of range, a token count no column holds),
is rejected on its own (OTLP's partial success) and never poisons later exports of its trace. The stored
spans are read inside the writing transaction, so two exports of one trace never lose each other's spans.
Only the traces an export touches are mapped again. Their runs are prepared as documents when those are
surely valid (``document_ingest``: the usual case, no model per step), through the models otherwise (which
then name what is wrong); either way the same rows are written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from pydantic_core import to_json

from opslab.errors import InvalidInput
from opslab.telemetry.document_ingest import prepare_documents
from opslab.telemetry.ingest import PreparedRun, check_semantics, prepare_run
from opslab.telemetry.otlp import Span
from opslab.telemetry.ports import RunRepository, TracePlan, UpsertStatus
from opslab.telemetry.prices import PriceTable
from opslab.telemetry.redact import Redactor
from opslab.telemetry.schema import AgentRunIn, storable_json, storable_texts, unstorable, utcnow
from opslab.telemetry.traces import map_trace, map_trace_documents


def write_export(
    repo: RunRepository,
    spans: list[Span],
    rejected: list[str],
    *,
    prices: PriceTable,
    redactor: Redactor,
) -> tuple[list[Span], list[PreparedRun], dict[str, UpsertStatus]]:
    """Keep the admissible ``spans`` and (re)make the runs of their traces; refused spans are added to
    ``rejected`` with the reason. Returns the spans kept, the runs written and their statuses."""
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    outcome = TracePlan()
    mapper = _Mapper(prices, redactor, utcnow())

    def plan(stored: Mapping[str, list[Span]]) -> TracePlan:
        for trace_id in sorted(by_trace):
            known = {s.span_id: s for s in stored.get(trace_id, [])}
            kept, payloads, trace_runs = _admit(known, by_trace[trace_id], rejected, mapper)
            if kept:
                outcome.spans.extend(kept)
                outcome.payloads.extend(payloads)
                outcome.traces.add(trace_id)
                outcome.runs.extend(trace_runs)
        return outcome

    statuses = repo.write_traces(sorted(by_trace), plan) if by_trace else {}
    return outcome.spans, outcome.runs, statuses


@dataclass(frozen=True, slots=True)
class _Mapper:
    """A trace's spans -> its runs, prepared: as documents when they are surely valid (``document_ingest``),
    else through the models, which raise ``ValueError`` naming what makes the trace unmappable."""

    prices: PriceTable
    redactor: Redactor
    now: datetime

    def runs(self, spans: Mapping[str, Span]) -> list[PreparedRun]:
        try:
            docs = map_trace_documents(spans.values(), prices=self.prices)
            prepared = prepare_documents(docs, redactor=self.redactor, now=self.now)
        except Exception:  # the models below say what is wrong, as they always did
            prepared = None
        if prepared is not None:
            return prepared
        return [prepare_run(r, redactor=self.redactor, source="otlp") for r in _mapped(spans, self.prices)]


def _mapped(spans: Mapping[str, Span], prices: PriceTable) -> list[AgentRunIn]:
    """The trace's runs, checked as ingest will check them; ``ValueError`` when it cannot be mapped."""
    try:
        runs = map_trace(spans.values(), prices=prices).runs
        for run in runs:
            check_semantics(run)
    except ValidationError as exc:
        raise ValueError(_fields_of(exc)) from None
    except (InvalidInput, OverflowError, ValueError, OSError, RecursionError) as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    return runs


# A run's fields that spans' attributes fill, by the attribute a user would look for.
_FROM_ATTRIBUTE = {
    "tokens_prompt": "gen_ai.usage.input_tokens",
    "tokens_completion": "gen_ai.usage.output_tokens",
    "total_cost_usd": "the trace's cost",
}


# Models a trace's run is built from, by the run's field that holds them.
_MODEL_FIELD = {"CostIn": "cost", "AgentRunIn": "run", "StepIn": "step", "ToolCallIn": "tool_call"}


def _fields_of(exc: ValidationError) -> str:
    """Each offending field of a model built from spans, with the attribute it came from."""
    parts = []
    for error in exc.errors(include_url=False)[:3]:
        field = ".".join(str(p) for p in error["loc"]) or exc.title
        source = _FROM_ATTRIBUTE.get(str(error["loc"][-1])) if error["loc"] else None
        shown = f"{field} (from {source})" if source else field
        parts.append(f"{_MODEL_FIELD.get(exc.title, exc.title)}.{shown}: {error['msg']}")
    return "; ".join(parts)


def _admit(
    stored: dict[str, Span], new: list[Span], rejected: list[str], mapper: _Mapper
) -> tuple[list[Span], list[str], list[PreparedRun]]:
    """The new spans of one trace that can be stored and keep the trace mappable, their JSON texts, and
    the trace's runs then."""
    candidates: list[Span] = []
    texts: dict[int, str] = {}
    plain = storable_texts([span.to_json() for span in new])  # the usual case: one look for them all
    for i, span in enumerate(new):
        text, problem = (plain[i].decode(), None) if plain is not None else _payload(span)
        if problem:
            rejected.append(f"span {span.span_id}: {problem}")
        else:
            candidates.append(span)
            texts[id(span)] = text
    merged = {**stored, **{s.span_id: s for s in candidates}}
    try:
        return candidates, [texts[id(s)] for s in candidates], mapper.runs(merged)
    except ValueError:
        pass
    # Some new span breaks the trace: admit them one by one, keeping those the trace survives.
    kept: list[Span] = []
    current = dict(stored)
    runs: list[AgentRunIn] = []
    with contextlib.suppress(ValueError):
        runs = _mapped(current, mapper.prices)
    for span in candidates:
        trial = {**current, span.span_id: span}
        try:
            runs = _mapped(trial, mapper.prices)
        except ValueError as exc:
            rejected.append(f"span {span.span_id}: {exc}")
            continue
        current = trial
        kept.append(span)
    prepared = [prepare_run(r, redactor=mapper.redactor, source="otlp") for r in runs]
    return kept, [texts[id(s)] for s in kept], prepared


def _payload(span: Span) -> tuple[str, str | None]:
    """A span's JSON text as it is stored, or why it cannot be stored alike on every database: one
    serialisation answers both for almost every span (``schema.storable_json``)."""
    data = span.to_json()
    text = storable_json(data)
    if text is not None:
        return text.decode(), None
    problem = unstorable(data)
    return ("", problem) if problem else (to_json(data, inf_nan_mode="constants").decode(), None)
