"""OTLP/HTTP protobuf trace exports -> spans, read straight from the decoded message.

The spans, and the reasons a span is refused, are exactly those ``otlp.parse_request`` makes of the
export's JSON mapping (``otlp.decode_protobuf``): ids as lower-case hex, ``bytesValue`` as base64, an
attribute without a key refused (the JSON mapping drops an empty key), checks in the same order. Only
the intermediate JSON mapping, a dictionary per span and per value, is never built.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opslab.errors import InvalidInput
from opslab.telemetry.otlp import Span, check_span_count, parse_message

_MAX_ID_BYTES = 32  # 64 hex digits, as ``otlp.parse_request`` takes them
_NO_ID = frozenset(bytes(n) for n in range(_MAX_ID_BYTES + 1))  # absent (empty), or all zeros


def load_messages() -> None:
    """Import the OTLP/protobuf messages the receivers read now, not on the first export (~15 ms of
    the service's first answer, and of its sidecar's first share): a service calls it as it starts.
    Commands that never read an export never import them."""
    import opentelemetry.proto.collector.logs.v1.logs_service_pb2
    import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2
    import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # noqa: F401


def decode_spans(raw: bytes, *, max_spans: int | None = None) -> tuple[list[Span], list[str]]:
    """An ``ExportTraceServiceRequest`` (protobuf) -> its spans, and why each refused span was refused;
    more than ``max_spans`` spans are refused (``PayloadTooLarge``) before any is converted."""
    index = index_export(raw, max_spans=max_spans)
    spans, refused = index.decode(index.trace_ids)
    return [s for _, s in sorted(spans)], [why for _, why in sorted([*index.refused, *refused])]


Placed = tuple[int, Any, dict[str, Any], int, int, int]  # a span's place in the export, with its message


@dataclass(frozen=True, slots=True)
class ExportIndex:
    """A protobuf export parsed once, its spans grouped by trace and each converted only when its trace is
    asked for (``decode``): a share of an export's traces is read where it is planned. A span's place is
    its position among the export's spans, which orders spans and refusals as the export has them."""

    by_trace: dict[str, list[Placed]]  # trace id (hex) -> its spans, in the export's order
    refused: list[tuple[int, str]]  # the spans whose ids refuse them already (their place, why)
    spans: int

    @property
    def trace_ids(self) -> list[str]:
        return sorted(self.by_trace)

    def decode(self, trace_ids: Iterable[str]) -> tuple[list[tuple[int, Span]], list[tuple[int, str]]]:
        """The spans of ``trace_ids`` (each with its place), and why each refused one was refused."""
        spans: list[tuple[int, Span]] = []
        refused: list[tuple[int, str]] = []
        for trace_id in trace_ids:
            self._convert(trace_id, spans, refused)
        return spans, refused

    def read(self, trace_ids: Iterable[str]) -> tuple[dict[str, list[Span]], list[tuple[int, str]]]:
        """``decode`` by trace: each trace's spans in the export's order (a trace none of whose spans is
        kept is left out)."""
        by_trace: dict[str, list[Span]] = {}
        refused: list[tuple[int, str]] = []
        for trace_id in trace_ids:
            placed: list[tuple[int, Span]] = []
            self._convert(trace_id, placed, refused)
            if placed:
                by_trace[trace_id] = [span for _, span in placed]
        return by_trace, refused

    def _convert(self, trace_id: str, spans: list[tuple[int, Span]], refused: list[tuple[int, str]]) -> None:
        for place, sp, resource, ri, si, pi in self.by_trace[trace_id]:
            try:
                spans.append((place, _span(sp, resource, ri, si, pi)))
            except InvalidInput as exc:
                refused.append((place, exc.message))
            except (KeyError, RecursionError) as exc:
                where = f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                refused.append((place, f"{where}: malformed span: {str(exc)[:200]}"))


def index_export(raw: bytes, *, max_spans: int | None = None) -> ExportIndex:
    """``raw`` parsed and its spans grouped by trace; a body that is no export, or one of more than
    ``max_spans`` spans, is refused (``InvalidInput``, ``PayloadTooLarge``) before any span is converted,
    and so is one whose resource cannot be read. A span whose trace or span id is missing, all zeros or
    too long is refused here, as converting it would."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    msg = parse_message(ExportTraceServiceRequest(), raw)
    count = sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
    if max_spans is not None:
        check_span_count(count, max_spans)
    by_trace: dict[str, list[Placed]] = {}
    refused: list[tuple[int, str]] = []
    place = 0
    for ri, rs in enumerate(msg.resource_spans):
        try:
            resource = _attributes(rs.resource.attributes)
        except (KeyError, RecursionError) as exc:
            raise InvalidInput.for_field(
                f"resourceSpans[{ri}]", f"malformed OTLP trace data: {exc}"
            ) from None
        for si, ss in enumerate(rs.scope_spans):
            for pi, sp in enumerate(ss.spans):
                trace_id = sp.trace_id
                if len(trace_id) > _MAX_ID_BYTES or trace_id in _NO_ID:
                    refused.append((place, _id_problem(trace_id, sp.span_id, ri, si, pi).message))
                else:
                    by_trace.setdefault(trace_id.hex(), []).append((place, sp, resource, ri, si, pi))
                place += 1
    return ExportIndex(by_trace, refused, count)


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
