"""Runs mapped from spans, prepared as documents: no model per step, the same run in the end.

``traces.map_trace_documents`` gives a trace's runs as the documents ``AgentRunIn`` validates, their
parts' keys in the models' field order. ``prepare_documents`` takes them when it can show each one
valid without pydantic: every check validating the document (and ``schema.check_run``) would make, made
on values whose types the mapping fixes. Then it redacts them as ``ingest.redact_run`` redacts a run, and
fingerprints the JSON of each, which is the model's JSON (``ingest.prepare_run``). A document it cannot
show valid is answered ``None``: the caller maps the trace through the models, which say what is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from opslab.telemetry.ingest import PreparedRun
from opslab.telemetry.redact import Redactor
from opslab.telemetry.schema import (
    INT_MAX,
    MAX_CLOCK_SKEW,
    MAX_MESSAGES,
    MAX_MILLIS,
    MAX_PARTS,
    MAX_TEXT,
    storable_json,
)

RunDoc = dict[str, Any]
_NUL = b"\\u0000"  # a NUL character in a JSON string


def prepare_documents(
    docs: Sequence[RunDoc], *, redactor: Redactor, now: datetime
) -> list[PreparedRun] | None:
    """The runs of one trace, prepared (``PreparedRun`` holding the document), or None when one of them
    is not surely valid."""
    checked: list[tuple[RunDoc, bytes, bytes]] = []
    for doc in docs:
        if not _surely_valid(doc, now):
            return None
        text = to_json(doc, exclude={"attributes"})
        structured = storable_json(_structured(doc))
        if structured is None or _NUL in text:
            return None
        checked.append((doc, text, structured))
    out = []
    for doc, text, structured in checked:
        if redactor.enabled and _redact(doc, redactor, structured):
            text = to_json(doc, exclude={"attributes"})
        out.append(PreparedRun(doc=doc, content_hash=hashlib.sha256(text).hexdigest(), source="otlp"))
    return out


def _surely_valid(doc: RunDoc, now: datetime) -> bool:
    """Whether ``AgentRunIn.model_validate(doc)`` and ``check_run`` surely accept ``doc``; normalised as
    ``check_run`` does it (a step's latency from its times, when it has none).

    What ``run_document`` makes valid by construction is not looked at again: ids (hex span ids,
    ``_ident``), names cut to 200 characters, closed sets, types, timestamps within the years the
    nanoseconds of a span can name, aware and in UTC, tool calls and events naming steps of the run. NUL
    anywhere is looked for in the document's JSON (``prepare_documents``); free-form values are shown
    storable there too."""
    ahead = now + MAX_CLOCK_SKEW
    ended = doc["ended_at"]
    if doc["started_at"] > ahead or (ended is not None and ended > ahead):
        return False
    if not _short_texts(doc["error_type"], doc["error_message"]):
        return False
    steps, calls, guards = doc["steps"], doc["tool_calls"], doc["guardrail_events"]
    if max(len(steps), len(calls), len(guards)) > MAX_PARTS:
        return False
    cost = doc["cost"]
    total = cost["total_cost_usd"]
    if not _counts(cost["tokens_prompt"], cost["tokens_completion"]) or (
        total is not None and total > MAX_MILLIS
    ):
        return False
    for s in steps:
        latency, start, end = s["latency_ms"], s["started_at"], s["ended_at"]
        if start is not None and end is not None:
            if end < start:
                return False
            if latency is None:  # times a nanosecond apart, the same to the microsecond
                s["latency_ms"] = latency = (end - start).total_seconds() * 1000
        if (
            (latency is not None and latency > MAX_MILLIS)
            or not _counts(s["tokens_prompt"], s["tokens_completion"])
            or len(s["input_messages"]) > MAX_MESSAGES
            or len(s["output_messages"]) > MAX_MESSAGES
        ):
            return False
    for c in calls:
        latency, start, end = c["latency_ms"], c["started_at"], c["ended_at"]
        if (
            (start is not None and end is not None and end < start)
            or (latency is not None and latency > MAX_MILLIS)
            or not _short_texts(c["error_class"], c["error_message"])
        ):
            return False
    if calls and len({c["call_id"] for c in calls}) < len(calls):
        return False
    if guards:
        if len({g["event_id"] for g in guards}) < len(guards):
            return False
        if not _short_texts(*(g["message"] for g in guards)):
            return False
    return True


def _counts(*values: int | None) -> bool:
    return all(v is None or v <= INT_MAX for v in values)


def _short_texts(*values: str | None) -> bool:
    return all(v is None or len(v) <= MAX_TEXT for v in values)


def _structured(doc: RunDoc) -> list[Any]:
    """The free-form values, as ``schema.free_form_values`` and ``ingest._structured`` list them."""
    values: list[Any] = [c["args_json"] for c in doc["tool_calls"] if c["args_json"]]
    if doc["attributes"]:
        values.append(doc["attributes"])
    if doc["metadata"]:
        values.append(doc["metadata"])
    return values


def _redact(doc: RunDoc, redactor: Redactor, structured: bytes) -> bool:
    """``ingest.redact_run`` on the document (``structured``: its free-form values' JSON); whether
    anything was masked."""
    changed = False
    if redactor.might_hold_secret("\x00".join(filter(None, _texts(doc)))):
        for part, name in _text_fields(doc):
            value = part[name] if isinstance(part, dict) else getattr(part, name)
            if value:
                masked = redactor.text(value)
                if masked is not value:
                    changed = True
                    if isinstance(part, dict):
                        part[name] = masked
                    else:  # a message: the same object a model of the step would hold
                        setattr(part, name, masked)
    if not structured or not redactor.might_hold_secret(structured.decode(), keys=True):
        return changed
    for c in doc["tool_calls"]:
        if c["args_json"]:
            args = redactor.value(c["args_json"])
            if args is not c["args_json"]:
                c["args_json"] = args
                changed = True
    for name in ("attributes", "metadata"):
        if doc[name]:
            masked = redactor.value(doc[name])
            if masked is not doc[name]:
                doc[name] = masked
                changed = True
    return changed


def _texts(doc: RunDoc) -> list[str | None]:
    """``ingest._texts`` of the document."""
    texts: list[str | None] = [doc["error_message"], doc["input"], doc["output"]]
    for s in doc["steps"]:
        texts += (s["input_summary"], s["output_summary"])
        for m in (*s["input_messages"], *s["output_messages"]):
            texts.append(m.content)
            texts.extend(call.arguments for call in m.tool_calls)
    for c in doc["tool_calls"]:
        texts += (c["result_summary"], c["error_message"])
    texts.extend(g["message"] for g in doc["guardrail_events"])
    return texts


def _text_fields(doc: RunDoc) -> Iterator[tuple[Any, str]]:
    """``ingest._text_fields`` of the document: (the dict or message holding it, its name)."""
    for name in ("error_message", "input", "output"):
        yield doc, name
    for s in doc["steps"]:
        yield s, "input_summary"
        yield s, "output_summary"
        for m in (*s["input_messages"], *s["output_messages"]):
            yield m, "content"
            for call in m.tool_calls:
                yield call, "arguments"
    for c in doc["tool_calls"]:
        yield c, "result_summary"
        yield c, "error_message"
    for g in doc["guardrail_events"]:
        yield g, "message"
