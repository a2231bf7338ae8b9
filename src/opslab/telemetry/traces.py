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

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from opslab.telemetry.otlp import Span
from opslab.telemetry.prices import PriceTable
from opslab.telemetry.run_document import RUN_TEXT_CHARS, Built, run_document
from opslab.telemetry.schema import AgentRunIn, CostIn
from opslab.telemetry.trace_index import Trace, Usage, span_time

# The index (``Trace``, ``Usage``, ``span_time``) lives in ``trace_index``; named here for the importers.
__all__ = ["RUN_TEXT_CHARS", "Trace", "TraceRuns", "Usage", "map_trace", "map_trace_documents", "span_time"]


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
        run_id = _run_id(root, roots)
        members = trace.subtree(root)
        for s in members:
            owner[s.span_id] = run_id
        runs.append(_run_of(trace, root, members, run_id))
    return TraceRuns(runs, owner, trace)


def map_trace_documents(spans: Iterable[Span], *, prices: PriceTable) -> list[dict[str, Any]]:
    """The runs of one trace's spans as the documents ``AgentRunIn`` validates, not validated: ingest
    shows them valid itself (``document_ingest``), or maps the trace with ``map_trace``."""
    trace = Trace.of(spans, prices)
    roots = trace.run_roots()
    return [run_document(trace, root, trace.subtree(root), _run_id(root, roots), []) for root in roots]


def _run_id(root: Span, roots: list[Span]) -> str:
    return root.trace_id if len(roots) == 1 else f"{root.trace_id}-{root.span_id}"


def _run_of(trace: Trace, root: Span, members: list[Span], run_id: str) -> AgentRunIn:
    """The run as one document, validated in one call (a model per step costs three times as much).
    When it is not valid, its parts are validated one by one in the order they were made, so the error
    is the one validating each part as it is made would raise (``exports`` names it to the user)."""
    built: Built = []
    try:
        doc = run_document(trace, root, members, run_id, built)
    except Exception:
        for model, part in built:  # a part made before the failure may be the first thing wrong
            model(**part)
        raise
    try:
        return AgentRunIn.model_validate(doc)
    except ValidationError:
        parts = {id(part): model(**part) for model, part in built}  # the first part's error, if any
        AgentRunIn(
            **{
                **doc,
                "steps": [parts[id(d)] for d in doc["steps"]],
                "tool_calls": [parts[id(d)] for d in doc["tool_calls"]],
                "guardrail_events": [parts[id(d)] for d in doc["guardrail_events"]],
                "cost": CostIn(**doc["cost"]),
            }
        )
        raise
