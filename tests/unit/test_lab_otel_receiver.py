"""The OTLP receiver of a lab run, called as the HTTP server calls it: spans land in the trial their path
names, in either encoding; anything else is refused the way OTLP/HTTP expects (a 4xx and a
``google.rpc.Status``), and nothing is written."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opslab.lab.otel_receiver import MAX_BODY, OtlpReply, TraceReceiver

PROTOBUF, JSON = "application/x-protobuf", "application/json"
TRACE = "5b8efff798038103d269b633813fc60c"


def run_dir(tmp_path: Path, *trials: str) -> Path:
    for trial_id in trials:
        (tmp_path / "trials" / trial_id / "out").mkdir(parents=True)
    return tmp_path


def json_export(*names: str, trace_id: str = TRACE) -> bytes:
    spans = [
        {
            "traceId": trace_id,
            "spanId": f"{i + 1:016x}",
            "name": name,
            "startTimeUnixNano": "1767323045000000000",
            "endTimeUnixNano": "1767323045500000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": name.split()[0]}}],
        }
        for i, name in enumerate(names)
    ]
    body = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]}
    return json.dumps(body).encode()


def protobuf_export(*names: str) -> bytes:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for name in names:
        with tracer.start_as_current_span(name) as span:
            span.set_attribute("gen_ai.operation.name", name.split()[0])
    data: bytes = encode_spans(memory.get_finished_spans()).SerializeToString()
    return data


def spans_of(root: Path, trial_id: str) -> list[dict[str, Any]]:
    path = root / "trials" / trial_id / "out" / "otel_spans.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def post(receiver: TraceReceiver, path: str, body: bytes, ctype: str = JSON, encoding: str = "") -> OtlpReply:
    return receiver.handle("POST", path, ctype, encoding, body)


def status_of(reply: OtlpReply) -> tuple[int, str]:
    if reply.content_type == PROTOBUF:
        status = Status()
        status.ParseFromString(reply.body)
        return status.code, status.message
    data = json.loads(reply.body)
    return data["code"], data["message"]


def test_json_spans_land_in_the_trial_the_path_names(tmp_path: Path) -> None:
    root = run_dir(tmp_path, "trial_1", "trial_2")
    receiver = TraceReceiver(root)
    reply = post(receiver, "/trials/trial_2/v1/traces", json_export("chat gpt-4o", "execute_tool search"))
    assert (reply.status, reply.content_type, reply.body, reply.spans) == (200, JSON, b"{}", 2)
    spans = spans_of(root, "trial_2")
    assert [s["name"] for s in spans] == ["chat gpt-4o", "execute_tool search"]
    assert spans[0]["trace_id"] == TRACE and spans[0]["attributes"]["gen_ai.operation.name"] == "chat"
    assert spans_of(root, "trial_1") == []
    # Each export appends; the bare trial path (a signal-specific endpoint variable) works as well.
    assert post(receiver, "/trials/trial_2", json_export("embeddings x")).status == 200
    assert len(spans_of(root, "trial_2")) == 3


def test_protobuf_spans_from_the_sdk_encoder_are_decoded(tmp_path: Path) -> None:
    root = run_dir(tmp_path, "trial_1")
    reply = post(
        TraceReceiver(root), "/trials/trial_1/v1/traces", protobuf_export("invoke_agent a"), PROTOBUF
    )
    assert (reply.status, reply.content_type) == (200, PROTOBUF)
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(reply.body)
    assert not answer.HasField("partial_success")
    [span] = spans_of(root, "trial_1")
    assert span["name"] == "invoke_agent a" and len(span["span_id"]) == 16 and span["parent_span_id"] is None


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_inflated(tmp_path: Path, encoding: str) -> None:
    root = run_dir(tmp_path, "trial_1")
    raw = json_export("chat m")
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    assert post(TraceReceiver(root), "/trials/trial_1/v1/traces", body, encoding=encoding).status == 200
    assert len(spans_of(root, "trial_1")) == 1


@pytest.mark.parametrize(
    ("path", "body", "ctype", "status", "grpc_code", "says"),
    [
        ("/trials/trial_9/v1/traces", json_export("chat m"), JSON, 404, 5, "not running"),
        ("/trials/trial_9/v1/traces", protobuf_export("chat m"), PROTOBUF, 404, 5, "not running"),
        ("/trials/../v1/traces", json_export("chat m"), JSON, 404, 5, "no such endpoint"),
        ("/trials/trial_1/../../x/v1/traces", json_export("chat m"), JSON, 404, 5, "no such endpoint"),
        ("/v1/traces", json_export("chat m"), JSON, 404, 5, "no such endpoint"),
        ("/trials/trial_1/v1/profiles", json_export("chat m"), JSON, 404, 5, "no such endpoint"),
        ("/trials/trial_1/v1/traces", b"{not json", JSON, 400, 3, "malformed JSON"),
        ("/trials/trial_1/v1/traces", b"\xff\xfe", JSON, 400, 3, "malformed JSON"),
        ("/trials/trial_1/v1/traces", b'{"resourceSpans": 7}', JSON, 400, 3, "expected an array"),
        ("/trials/trial_1/v1/traces", b"[]", JSON, 400, 3, "ExportTraceServiceRequest"),
        ("/trials/trial_1/v1/traces", json_export("x", trace_id="zz"), JSON, 400, 3, "hex id"),
        ("/trials/trial_1/v1/traces", b"\x0a\xff\xff\xff", PROTOBUF, 400, 3, "not an OTLP protobuf"),
        ("/trials/trial_1/v1/traces", b"spans", "text/plain", 415, 3, "content type"),
    ],
)
def test_refusals_are_otlp_status_replies_and_write_nothing(
    tmp_path: Path, path: str, body: bytes, ctype: str, status: int, grpc_code: int, says: str
) -> None:
    root = run_dir(tmp_path, "trial_1")
    reply = post(TraceReceiver(root), path, body, ctype)
    assert reply.status == status and reply.spans == 0
    code, message = status_of(reply)
    assert code == grpc_code and says in message
    assert reply.content_type == (PROTOBUF if ctype == PROTOBUF else JSON)
    assert spans_of(root, "trial_1") == []


def test_methods_encodings_and_bombs_are_refused(tmp_path: Path) -> None:
    receiver = TraceReceiver(run_dir(tmp_path, "trial_1"))
    reply = receiver.handle("GET", "/trials/trial_1/v1/traces", "", "", b"")
    assert reply.status == 405 and status_of(reply)[0] == 12
    assert post(receiver, "/trials/trial_1/v1/traces", json_export("a"), encoding="br").status == 400
    assert post(receiver, "/trials/trial_1/v1/traces", b"not gzip", encoding="gzip").status == 400
    bomb = gzip.compress(b" " * (MAX_BODY + 1))
    reply = post(receiver, "/trials/trial_1/v1/traces", bomb, encoding="gzip")
    assert reply.status == 413 and "inflates" in status_of(reply)[1]


def test_metrics_and_logs_of_an_instrumented_harness_are_accepted_and_dropped(tmp_path: Path) -> None:
    root = run_dir(tmp_path, "trial_1")
    receiver = TraceReceiver(root)
    for signal in ("metrics", "logs"):
        assert post(receiver, f"/trials/trial_1/v1/{signal}", b"\x00", PROTOBUF).status == 200
    assert spans_of(root, "trial_1") == []


def test_an_empty_export_is_accepted(tmp_path: Path) -> None:
    root = run_dir(tmp_path, "trial_1")
    assert post(TraceReceiver(root), "/trials/trial_1/v1/traces", b"", PROTOBUF).status == 200
    assert post(TraceReceiver(root), "/trials/trial_1/v1/traces", b"{}").status == 200
    assert not (root / "trials" / "trial_1" / "out" / "otel_spans.jsonl").exists()
