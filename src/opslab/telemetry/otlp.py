"""OTLP/HTTP trace requests -> spans: the JSON mapping, and protobuf decoded into the same shape.

Spans of one trace may arrive over several exports (children usually before their parent), so the
caller keeps spans and re-maps a whole trace (``telemetry.traces.map_trace``) whenever one arrives.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opslab.errors import InvalidInput, PayloadTooLarge

SUMMARY_CHARS = 2000
_ERROR_CODES = {2, "2", "STATUS_CODE_ERROR", "ERROR"}


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    error: bool
    status_message: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "attributes": self.attributes,
            "resource": self.resource,
            "error": self.error,
            "status_message": self.status_message,
            "events": self.events,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Span:
        return cls(**{k: data[k] for k in cls.__slots__})

    def to_row(self) -> dict[str, Any]:
        """The span as its trace's row keeps it (``store.spans``): ``to_json`` less the trace id (the
        row's key) and the fields that hold their empty value, which ``from_row`` puts back. A trace's
        row was a third smaller for spans as most instrumentations send them, and so was writing it."""
        row: dict[str, Any] = {
            "span_id": self.span_id,
            "name": self.name,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
        }
        if self.parent_span_id is not None:
            row["parent_span_id"] = self.parent_span_id
        if self.attributes:
            row["attributes"] = self.attributes
        if self.resource:
            row["resource"] = self.resource
        if self.error:
            row["error"] = True
        if self.status_message:
            row["status_message"] = self.status_message
        if self.events:
            row["events"] = self.events
        return row

    @classmethod
    def from_row(cls, trace_id: str, data: Mapping[str, Any]) -> Span:
        """A span of the trace ``trace_id`` from its row (``to_row``'s form, or ``to_json``'s, which rows
        written before held)."""
        get = data.get
        return cls(
            trace_id,
            data["span_id"],
            get("parent_span_id"),
            data["name"],
            data["start_ns"],
            data["end_ns"],
            get("attributes") or {},
            get("resource") or {},
            get("error", False),
            get("status_message", ""),
            get("events") or [],
        )

    def __reduce__(self) -> tuple[type[Span], tuple[Any, ...]]:
        # Pickled as its fields in order (a share of an export planned in the store's sidecar): a
        # dataclass's own pickling of its slots costs several times as much.
        return (
            Span,
            (
                self.trace_id,
                self.span_id,
                self.parent_span_id,
                self.name,
                self.start_ns,
                self.end_ns,
                self.attributes,
                self.resource,
                self.error,
                self.status_message,
                self.events,
            ),
        )

    @property
    def operation(self) -> str:
        op = self.attributes.get("gen_ai.operation.name")
        return str(op) if op else self.name.split(" ", 1)[0]


def decode_value(value: Mapping[str, Any]) -> Any:
    """An OTLP ``AnyValue`` in JSON mapping -> a Python value."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [decode_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return decode_attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def decode_attributes(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {str(kv["key"]): decode_value(kv.get("value") or {}) for kv in items}


def parse_request(body: Any, *, max_spans: int | None = None) -> tuple[list[Span], list[str]]:
    """An ``ExportTraceServiceRequest`` (JSON mapping) -> its spans, and why each refused span was refused.

    A span that is not well-formed (no trace or span id, ids that are not hex, times that are not
    numbers) is refused alone, as OTLP's partial success allows; a body that is not an export at all is
    an ``InvalidInput`` naming what is wrong; one of more than ``max_spans`` spans a ``PayloadTooLarge``."""
    if not isinstance(body, dict):
        raise InvalidInput.for_field("body", "expected an ExportTraceServiceRequest JSON object")
    resource_spans = body.get("resourceSpans", [])
    if not isinstance(resource_spans, list):
        raise InvalidInput.for_field("resourceSpans", "expected an array")
    if max_spans is not None:
        check_span_count(_count_json_spans(resource_spans), max_spans)
    spans: list[Span] = []
    refused: list[str] = []
    for ri, rs in enumerate(resource_spans):
        try:
            resource = decode_attributes(array_of((rs.get("resource") or {}).get("attributes")))
            scopes = array_of(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans"))
        except (AttributeError, TypeError, ValueError, KeyError, RecursionError) as exc:
            raise InvalidInput.for_field(
                f"resourceSpans[{ri}]", f"malformed OTLP trace data: {exc}"
            ) from None
        for si, ss in enumerate(scopes):
            items = array_of(ss.get("spans") if isinstance(ss, dict) else None)
            for pi, sp in enumerate(items):
                where = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                try:
                    spans.append(_span(sp, resource, where))
                except InvalidInput as exc:
                    refused.append(exc.message)
                except (AttributeError, TypeError, ValueError, KeyError, RecursionError) as exc:
                    refused.append(f"{where}: malformed span: {str(exc)[:200]}")
    return spans, refused


def check_span_count(n: int, max_spans: int) -> None:
    if n > max_spans:
        raise PayloadTooLarge(
            f"resourceSpans: {n} spans in one request; this service takes at most {max_spans} "
            "(OPSLAB_MAX_OTLP_SPANS): export smaller batches (the batch processor's max export batch size)",
            details={"spans": n, "limit_spans": max_spans, "setting": "OPSLAB_MAX_OTLP_SPANS"},
        )


def _count_json_spans(resource_spans: list[Any]) -> int:
    n = 0
    for rs in resource_spans:
        if not isinstance(rs, dict):
            continue
        scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans")
        for ss in scopes if isinstance(scopes, list) else ():
            spans = ss.get("spans") if isinstance(ss, dict) else None
            n += len(spans) if isinstance(spans, list) else 0
    return n


def array_of(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError("expected an array")
    return value


def _span(sp: Mapping[str, Any], resource: dict[str, Any], where: str) -> Span:
    trace_id, span_id = sp.get("traceId"), sp.get("spanId")
    if not trace_id or not span_id:
        raise InvalidInput.for_field(f"{where}.traceId", "traceId and spanId are required")
    for label, ident in (("traceId", trace_id), ("spanId", span_id)):
        if (
            not isinstance(ident, str)
            or len(ident) > 64
            or not all(c in "0123456789abcdefABCDEF" for c in ident)
        ):
            raise InvalidInput.for_field(f"{where}.{label}", "expected a hex id")
        if not ident.strip("0"):
            raise InvalidInput.for_field(f"{where}.{label}", "an all-zero id is invalid (OTLP)")
    status = sp.get("status") or {}
    events = [
        {
            "name": ev.get("name", ""),
            "time_ns": int(ev.get("timeUnixNano") or 0),
            "attributes": decode_attributes(ev.get("attributes") or []),
        }
        for ev in sp.get("events") or []
    ]
    parent = sp.get("parentSpanId") or None
    if parent is not None and (not isinstance(parent, str) or len(parent) > 64):
        raise InvalidInput.for_field(f"{where}.parentSpanId", "expected a hex id")
    start_ns, end_ns = int(sp.get("startTimeUnixNano") or 0), int(sp.get("endTimeUnixNano") or 0)
    if start_ns <= 0:
        raise InvalidInput.for_field(f"{where}.startTimeUnixNano", "required, nanoseconds after 1970")
    if end_ns < 0:
        raise InvalidInput.for_field(f"{where}.endTimeUnixNano", "negative: nanoseconds after 1970 expected")
    return Span(
        trace_id=trace_id.lower(),
        span_id=span_id.lower(),
        parent_span_id=parent.lower() if parent else None,
        name=str(sp.get("name") or ""),
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=decode_attributes(sp.get("attributes") or []),
        resource=resource,
        error=status.get("code") in _ERROR_CODES,
        status_message=str(status.get("message") or ""),
        events=events,
    )


def encode_export_response(rejected_spans: int, error_message: str) -> bytes:
    """An ``ExportTraceServiceResponse`` (protobuf), with OTLP's partial success when spans were refused."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    answer = ExportTraceServiceResponse()
    if rejected_spans:
        answer.partial_success.rejected_spans = rejected_spans
        answer.partial_success.error_message = error_message
    data: bytes = answer.SerializeToString()
    return data


def decode_protobuf(raw: bytes, *, max_spans: int | None = None) -> dict[str, Any]:
    """OTLP/HTTP protobuf -> the JSON mapping (ids as hex, as OTLP/JSON has them); more than ``max_spans``
    spans are refused before any is converted."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    msg = parse_message(ExportTraceServiceRequest(), raw)
    if max_spans is not None:
        check_span_count(sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans), max_spans)
    data = _as_dict(msg)
    for rs in data.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                hex_ids(sp, ("traceId", "spanId", "parentSpanId"))
    return data


def message_dict(msg: Any, raw: bytes) -> dict[str, Any]:
    return _as_dict(parse_message(msg, raw))


def parse_message(msg: Any, raw: bytes) -> Any:
    from google.protobuf.message import DecodeError

    try:
        msg.ParseFromString(raw)
    except DecodeError as exc:
        raise InvalidInput.for_field("body", f"not an OTLP protobuf {type(msg).__name__}: {exc}") from None
    return msg


def _as_dict(msg: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    data: dict[str, Any] = MessageToDict(msg)
    return data


def hex_ids(item: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if item.get(key):
            item[key] = base64.b64decode(item[key]).hex()
