"""OTLP trace exports -> stored spans and the runs they make, in one transaction per export.

Each trace an export touches is mapped with its new spans *before* anything is stored: a span that cannot
be stored, or that would make its trace unmappable (a time out of range, a token count no column holds),
is rejected on its own (OTLP's partial success) and never poisons later exports of its trace. The stored
spans are read inside the writing transaction, so two exports of one trace never lose each other's spans.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

from pydantic import ValidationError

from opslab.errors import InvalidInput
from opslab.telemetry.ingest import PreparedRun, check_semantics
from opslab.telemetry.otlp import Span
from opslab.telemetry.ports import RunRepository, TracePlan, UpsertStatus
from opslab.telemetry.prices import PriceTable
from opslab.telemetry.schema import AgentRunIn, unstorable
from opslab.telemetry.traces import map_trace

Prepare = Callable[[Sequence[AgentRunIn]], list[PreparedRun]]


def write_export(
    repo: RunRepository,
    spans: list[Span],
    rejected: list[str],
    *,
    prices: PriceTable,
    prepare: Prepare,
) -> tuple[list[Span], list[PreparedRun], dict[str, UpsertStatus]]:
    """Keep the admissible ``spans`` and (re)make the runs of their traces; refused spans are added to
    ``rejected`` with the reason. Returns the spans kept, the runs written and their statuses."""
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    outcome = TracePlan()

    def plan(stored: Mapping[str, list[Span]]) -> TracePlan:
        runs: list[AgentRunIn] = []
        for trace_id in sorted(by_trace):
            known = {s.span_id: s for s in stored.get(trace_id, [])}
            kept, trace_runs = _admit(known, by_trace[trace_id], rejected, prices)
            if kept:
                outcome.spans.extend(kept)
                outcome.traces.add(trace_id)
                runs.extend(trace_runs)
        outcome.runs = prepare(runs)
        return outcome

    statuses = repo.write_traces(sorted(by_trace), plan) if by_trace else {}
    return outcome.spans, outcome.runs, statuses


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
    stored: dict[str, Span], new: list[Span], rejected: list[str], prices: PriceTable
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
        return candidates, _mapped(merged, prices)
    except ValueError:
        pass
    # Some new span breaks the trace: admit them one by one, keeping those the trace survives.
    kept: list[Span] = []
    current = dict(stored)
    runs: list[AgentRunIn] = []
    with contextlib.suppress(ValueError):
        runs = _mapped(current, prices)
    for span in candidates:
        trial = {**current, span.span_id: span}
        try:
            runs = _mapped(trial, prices)
        except ValueError as exc:
            rejected.append(f"span {span.span_id}: {exc}")
            continue
        current = trial
        kept.append(span)
    return kept, runs
