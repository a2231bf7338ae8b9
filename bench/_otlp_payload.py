"""OTLP trace exports for bench/ingest.py: agent traces as an OpenAI-instrumented agent sends them."""

from __future__ import annotations

import gzip
import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

SPANS_PER_TRACE = 5
T0 = 1_763_900_000_000_000_000


def _kv(key: str, value: str | int) -> KeyValue:
    v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    return KeyValue(key=key, value=v)


def _span(n: int, i: int, parent: int | None, name: str, attrs: list[KeyValue], error: str = "") -> Span:
    start = T0 + n * 1_000_000
    s = Span(
        trace_id=n.to_bytes(16, "big"),
        span_id=(n * 16 + i + 1).to_bytes(8, "big"),
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start + i * 1000,
        end_time_unix_nano=start + 900_000 - i * 1000,
        attributes=attrs,
    )
    if parent is not None:
        s.parent_span_id = (n * 16 + parent + 1).to_bytes(8, "big")
    s.status.code = Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK
    s.status.message = error
    return s


def export(first_trace: int, traces: int) -> ExportTraceServiceRequest:
    """``traces`` traces of 5 spans: an agent, two chat calls with usage, a tool call that fails, a step."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(
        [_kv("service.name", "bench-agent"), _kv("deployment.environment.name", "bench")]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    for n in range(first_trace, first_trace + traces):
        ss.spans.extend(
            [
                _span(n, 0, None, "invoke_agent support", [_kv("gen_ai.operation.name", "invoke_agent"),
                      _kv("gen_ai.agent.name", "support"), _kv("gen_ai.conversation.id", f"conv-{n % 97}")],
                      "order lookup failed"),
                _span(n, 1, 0, "chat gpt-4o-mini", [_kv("gen_ai.operation.name", "chat"),
                      _kv("gen_ai.request.model", "gpt-4o-mini"), _kv("gen_ai.usage.input_tokens", 300),
                      _kv("gen_ai.usage.output_tokens", 40)]),
                _span(n, 2, 0, "execute_tool order_lookup", [_kv("gen_ai.operation.name", "execute_tool"),
                      _kv("gen_ai.tool.name", "order_lookup"), _kv("gen_ai.tool.call.id", f"call-{n}"),
                      _kv("gen_ai.tool.call.arguments", '{"order_id": "A-1001"}'),
                      _kv("error.type", "TimeoutError")], "orders API timed out after 10s"),
                _span(n, 3, 0, "chat gpt-4o-mini", [_kv("gen_ai.operation.name", "chat"),
                      _kv("gen_ai.request.model", "gpt-4o-mini"), _kv("gen_ai.usage.input_tokens", 420),
                      _kv("gen_ai.usage.output_tokens", 60)]),
                _span(n, 4, 0, "format answer", [_kv("input.value", "Where is order A-1001?")]),
            ]
        )  # fmt: skip
    return req


def as_json(req: ExportTraceServiceRequest) -> bytes:
    """The OTLP/JSON encoding (hex ids, as the OTLP/JSON mapping has them)."""
    import base64

    data: dict[str, Any] = MessageToDict(req)
    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64decode(sp[key]).hex()
    return json.dumps(data).encode()


def payloads(requests: int, traces_per_request: int, encoding: str, *, first_trace: int = 1) -> list[bytes]:
    """Gzip-compressed exports, each of fresh traces (ids from ``first_trace`` on)."""
    out = []
    for r in range(requests):
        req = export(first_trace + r * traces_per_request, traces_per_request)
        raw = req.SerializeToString() if encoding == "protobuf" else as_json(req)
        out.append(gzip.compress(raw, compresslevel=6))
    return out
