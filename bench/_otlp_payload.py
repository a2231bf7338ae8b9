"""OTLP trace exports for bench/ingest.py (agent traces as an OpenAI-instrumented agent sends them), and the
floor of storing spans at all."""

from __future__ import annotations

import gzip
import json
import sqlite3
import tempfile
import time
from pathlib import Path
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


def agent_exports(requests: int, traces: int, spans: int, *, seed: int = 7) -> list[bytes]:
    """Uncompressed protobuf exports of ``traces`` fresh traces each: one ``invoke_agent`` root span and
    ``spans - 1`` ``chat`` children, one attribute a span (the shape of the acceptance check's OTLP
    figure)."""
    import random

    rnd = random.Random(seed)
    out = []
    for _ in range(requests):
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        for _ in range(traces):
            trace_id, root = rnd.randbytes(16), rnd.randbytes(8)
            for k in range(spans):
                s = ss.spans.add()
                s.trace_id, s.span_id, s.name = trace_id, root if k == 0 else rnd.randbytes(8), f"step-{k}"
                if k:
                    s.parent_span_id = root
                s.start_time_unix_nano = T0 + k * 1000
                s.end_time_unix_nano = T0 + k * 1000 + 500
                s.attributes.append(_kv("gen_ai.operation.name", "chat" if k else "invoke_agent"))
        out.append(req.SerializeToString())
    return out


def varied_exports(requests: int, *, seed: int = 11) -> list[bytes]:
    """Uncompressed protobuf exports as agents send them: 30-300 traces each of 2-15 spans (an
    ``invoke_agent`` root and ``chat`` children), each trace at its own time and each step its own
    latency, half the steps with a model and token counts. Unlike ``agent_exports``, whose traces all
    start at one instant, their rows' start times and latencies scatter over the indexes."""
    import random

    rnd = random.Random(seed)
    out = []
    for _ in range(requests):
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        for _ in range(rnd.randint(30, 300)):
            trace_id, root = rnd.randbytes(16), rnd.randbytes(8)
            start = T0 + rnd.randrange(10**12)
            for k in range(rnd.randint(2, 15)):
                s = ss.spans.add()
                s.trace_id, s.span_id, s.name = trace_id, root if k == 0 else rnd.randbytes(8), f"step-{k}"
                if k:
                    s.parent_span_id = root
                s.start_time_unix_nano = start + k * 1000
                s.end_time_unix_nano = start + k * 1000 + rnd.randrange(100, 10**9)
                s.attributes.append(_kv("gen_ai.operation.name", "chat" if k else "invoke_agent"))
                if k and rnd.random() < 0.5:
                    s.attributes.append(_kv("gen_ai.request.model", "gpt-4o-mini"))
                    s.attributes.append(_kv("gen_ai.usage.input_tokens", rnd.randint(1, 5000)))
        out.append(req.SerializeToString())
    return out


def floor_rows(bodies: list[bytes]) -> dict[str, Any]:
    """Decoding the exports and writing one row per span with raw sqlite3 ``executemany``, a transaction
    per export: the floor of storing spans at all (the acceptance check's)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    with tempfile.TemporaryDirectory(prefix="opslab-bench-otlp-floor-") as tmp:
        db = sqlite3.connect(Path(tmp) / "floor.db")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE spans (trace_id TEXT, span_id TEXT, parent TEXT, name TEXT, start INTEGER,"
            " end INTEGER, attrs TEXT)"
        )
        start, spans = time.perf_counter(), 0
        for body in bodies:
            req = ExportTraceServiceRequest.FromString(body)
            rows = [
                (
                    s.trace_id.hex(),
                    s.span_id.hex(),
                    s.parent_span_id.hex(),
                    s.name,
                    s.start_time_unix_nano,
                    s.end_time_unix_nano,
                    str([(a.key, a.value.string_value) for a in s.attributes]),
                )
                for rs in req.resource_spans
                for ss in rs.scope_spans
                for s in ss.spans
            ]
            with db:
                db.executemany("INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            spans += len(rows)
        wall = time.perf_counter() - start
        db.close()
    return {"spans": spans, "wall_s": round(wall, 3), "spans_per_s": round(spans / wall, 1)}
