"""A span read by the convention its attributes name, the GenAI reading filling what that one leaves out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opslab.telemetry.conventions._facts import Convention, SpanFacts
from opslab.telemetry.conventions._genai import read_genai
from opslab.telemetry.conventions._langfuse import read_langfuse
from opslab.telemetry.conventions._openinference import read_openinference
from opslab.telemetry.conventions._openllmetry import read_openllmetry
from opslab.telemetry.otlp import Span


def convention_of(attributes: Mapping[str, Any]) -> Convention:
    if "openinference.span.kind" in attributes:
        return "openinference"
    traceloop = False
    for key in attributes:  # one look at each key (a plain loop: the cheapest for a few keys)
        if key.startswith(_MARKS):
            if key.startswith("langfuse."):
                return "langfuse"
            traceloop = True
    if traceloop or "llm.request.type" in attributes:
        return "openllmetry"
    return "genai"


_MARKS = ("langfuse.", "traceloop.")


def read_span(span: Span) -> SpanFacts:
    """The facts of ``span`` by the convention its attributes name, GenAI filling the gaps."""
    convention = convention_of(span.attributes)
    facts = read_genai(span, convention)
    if convention != "genai":
        _READERS[convention](span, facts)
    return facts


def status_message(span: Span) -> str:
    """The span's error text: its status message, Langfuse's status message or its exception event."""
    if span.status_message:
        return span.status_message
    message = span.attributes.get("langfuse.observation.status_message")
    if message:
        return str(message)
    for ev in span.events:
        if ev["name"] == "exception":
            return str(ev["attributes"].get("exception.message") or "")
    return ""


_READERS: dict[Convention, Callable[[Span, SpanFacts], None]] = {
    "openinference": read_openinference,
    "openllmetry": read_openllmetry,
    "langfuse": read_langfuse,
}
