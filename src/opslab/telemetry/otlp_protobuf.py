"""OTLP/HTTP protobuf trace exports -> spans, read straight from the decoded message.

The spans, and the reasons a span is refused, are exactly those ``otlp.parse_request`` makes of the
export's JSON mapping (``otlp.decode_protobuf``): ids as lower-case hex, ``bytesValue`` as base64, an
attribute without a key refused (the JSON mapping drops an empty key), checks in the same order. Only
the intermediate JSON mapping, a dictionary per span and per value, is never built.
"""

from __future__ import annotations

import base64
from typing import Any

from opslab.errors import InvalidInput
from opslab.telemetry.otlp import Span, check_span_count, parse_message

_MAX_ID_BYTES = 32  # 64 hex digits, as ``otlp.parse_request`` takes them
_NO_ID = frozenset(bytes(n) for n in range(_MAX_ID_BYTES + 1))  # absent (empty), or all zeros


def decode_spans(raw: bytes, *, max_spans: int | None = None) -> tuple[list[Span], list[str]]:
    """An ``ExportTraceServiceRequest`` (protobuf) -> its spans, and why each refused span was refused;
    more than ``max_spans`` spans are refused (``PayloadTooLarge``) before any is converted."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    msg = parse_message(ExportTraceServiceRequest(), raw)
    if max_spans is not None:
        check_span_count(sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans), max_spans)
    spans: list[Span] = []
    refused: list[str] = []
    for ri, rs in enumerate(msg.resource_spans):
        try:
            resource = _attributes(rs.resource.attributes)
        except (KeyError, RecursionError) as exc:
            raise InvalidInput.for_field(
                f"resourceSpans[{ri}]", f"malformed OTLP trace data: {exc}"
            ) from None
        for si, ss in enumerate(rs.scope_spans):
            for pi, sp in enumerate(ss.spans):
                try:
                    spans.append(_span(sp, resource, ri, si, pi))
                except InvalidInput as exc:
                    refused.append(exc.message)
                except (KeyError, RecursionError) as exc:
                    where = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                    refused.append(f"{where}: malformed span: {str(exc)[:200]}")
    return spans, refused


def _span(sp: Any, resource: dict[str, Any], ri: int, si: int, pi: int) -> Span:
    trace_id, span_id = sp.trace_id, sp.span_id
    # One set lookup each answers "present, and not all zeros" (hashes of bytes are cached).
    if (
        len(trace_id) > _MAX_ID_BYTES
        or len(span_id) > _MAX_ID_BYTES
        or trace_id in _NO_ID
        or span_id in _NO_ID
    ):
        raise _id_problem(trace_id, span_id, ri, si, pi)
    # ``len`` before iterating: most spans have no events, and iterating an empty repeated field costs
    # more than asking its length.
    events = (
        [
            {"name": ev.name, "time_ns": ev.time_unix_nano, "attributes": _attributes(ev.attributes)}
            for ev in sp.events
        ]
        if len(sp.events)
        else []
    )
    parent = sp.parent_span_id
    if len(parent) > _MAX_ID_BYTES:
        raise InvalidInput.for_field(f"{_where(ri, si, pi)}.parentSpanId", "expected a hex id")
    start_ns = sp.start_time_unix_nano
    if start_ns <= 0:
        raise InvalidInput.for_field(
            f"{_where(ri, si, pi)}.startTimeUnixNano", "required, nanoseconds after 1970"
        )
    if sp.HasField("status"):
        status = sp.status
        failed, message = status.code == 2, status.message  # STATUS_CODE_ERROR
    else:
        failed, message = False, ""
    return Span(
        trace_id.hex(),
        span_id.hex(),
        parent.hex() if parent else None,
        sp.name,
        start_ns,
        sp.end_time_unix_nano,  # fixed64: never negative
        _attributes(sp.attributes) if len(sp.attributes) else {},
        resource,
        failed,
        message,
        events,
    )


def _id_problem(trace_id: bytes, span_id: bytes, ri: int, si: int, pi: int) -> InvalidInput:
    """Why ``otlp.parse_request`` refuses these ids (its first reason, in its order of checks)."""
    where = _where(ri, si, pi)
    if not trace_id or not span_id:
        return InvalidInput.for_field(f"{where}.traceId", "traceId and spanId are required")
    for label, ident in (("traceId", trace_id), ("spanId", span_id)):
        if len(ident) > _MAX_ID_BYTES:
            return InvalidInput.for_field(f"{where}.{label}", "expected a hex id")
        if not ident.strip(b"\0"):
            return InvalidInput.for_field(f"{where}.{label}", "an all-zero id is invalid (OTLP)")
    raise AssertionError("ids that parse_request takes")  # pragma: no cover


def _where(ri: int, si: int, pi: int) -> str:
    return f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"


def _attributes(items: Any) -> dict[str, Any]:
    """``KeyValue``s -> a dict, as ``otlp.decode_attributes`` reads their JSON mapping."""
    out: dict[str, Any] = {}
    for kv in items:
        key = kv.key
        if not key:  # the JSON mapping leaves an empty key out, and reading it fails there
            raise KeyError("key")
        value = kv.value
        which = value.WhichOneof("value")
        out[key] = value.string_value if which == "string_value" else _value(value, which)
    return out


def _value(value: Any, which: str | None) -> Any:
    """An ``AnyValue`` -> a Python value, as ``otlp.decode_value`` reads its JSON mapping."""
    if which is None:
        return None
    if which == "array_value":
        return [_value(v, v.WhichOneof("value")) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)  # string, int, double or bool
