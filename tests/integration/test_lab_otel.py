"""The lab's OTLP collector on real sockets: a real harness process with the OpenTelemetry SDK exports to
its trial's endpoint; exports over the Unix socket a namespace bridge forwards to; refusals, odd HTTP and
many exporters at once never stop it; ``close`` leaves nothing listening."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from google.rpc.status_pb2 import Status

from opslab import proc
from opslab.errors import InvalidInput
from opslab.lab import TrialRecord, trial_to_agent_run
from opslab.lab.events import count_events, read_span_events
from opslab.lab.isolation import RunScratch
from opslab.lab.otel import OtlpCollector, otel_env
from opslab.lab.span_steps import read_spans
from opslab.telemetry import parse_run
from tests.unit.test_lab_otel_receiver import json_export, protobuf_export

JSON = {"Content-Type": "application/json"}
HARNESS = """
import json
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint from the environment
tracer = provider.get_tracer("harness")
with tracer.start_as_current_span("invoke_agent solver") as root:
    root.set_attribute("gen_ai.operation.name", "invoke_agent")
    for turn in range(3):
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            chat.set_attribute("gen_ai.usage.input_tokens", 100)
            with tracer.start_as_current_span("execute_tool order_lookup") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "order_lookup")
                tool.set_attribute("gen_ai.tool.call.arguments", json.dumps({"order": turn}))
                if turn == 2:
                    tool.set_attribute("error.type", "ValidationError")
                    tool.set_status(Status(StatusCode.ERROR, "customer_id missing"))
provider.shutdown()
"""


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    for trial_id in ("trial_1", "trial_2"):
        (tmp_path / "run_1" / "trials" / trial_id / "out").mkdir(parents=True)
    return tmp_path / "run_1"


@pytest.fixture
def collector(run_dir: Path) -> Iterator[OtlpCollector]:
    with RunScratch() as private, OtlpCollector.start(run_dir, socket_dir=private.path) as c:
        yield c


def spans_file(run_dir: Path, trial_id: str) -> Path:
    return run_dir / "trials" / trial_id / "out" / "otel_spans.jsonl"


def test_a_real_sdk_harness_exports_its_spans_into_its_trial(
    collector: OtlpCollector, run_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "harness.py"
    script.write_text(HARNESS)
    env = {"PATH": "/usr/bin:/bin", **otel_env(collector.endpoint_for("trial_2"))}
    stderr = tmp_path / "stderr.log"
    res = proc.run([sys.executable, str(script)], timeout_s=60, env=env, stderr=stderr)
    assert res.ok, stderr.read_text()
    assert "Failed to export" not in stderr.read_text()
    assert not spans_file(run_dir, "trial_1").exists()
    events = read_span_events(str(run_dir / "trials" / "trial_2")).events
    assert count_events(events) == {"agent": 1, "llm_call": 3, "tool_call": 3}
    assert [e["status"] for e in events if e["type"] == "tool_call"] == ["ok", "ok", "error"]
    fields = {"trial_id": "trial_2", "variant_id": "v", "task_id": "t", "replication": 1, "seed": 1}
    record = TrialRecord.model_validate(
        {**fields, "outcome": "failure", "exit_code": 0, "duration_ms": res.duration_s * 1000}
    )
    spans = read_spans(str(run_dir / "trials" / "trial_2"))
    run = trial_to_agent_run(
        record, lab_run_id="run_1", experiment_id="exp", spans=spans, finished_at=datetime.now(UTC)
    )
    parse_run(run.model_dump(mode="json"))
    assert [c.status for c in run.tool_calls] == ["success", "success", "failure"]
    assert run.tool_calls[2].args_json == {"order": 2} and run.tool_calls[2].error_class == "ValidationError"
    assert run.cost.tokens_prompt == 300 and run.model == "gpt-4o-mini"


def test_exports_over_the_unix_socket_reach_their_trial(collector: OtlpCollector, run_dir: Path) -> None:
    assert len(collector.unix_socket.encode()) < 100
    transport = httpx.HTTPTransport(uds=collector.unix_socket)
    with httpx.Client(transport=transport, base_url="http://127.0.0.1", timeout=10) as client:
        pb = {"Content-Type": "application/x-protobuf"}
        exported = client.post("/trials/trial_1/v1/traces", content=protobuf_export("chat a"), headers=pb)
        assert exported.is_success
        reply = client.post("/trials/trial_1/v1/traces", content=json_export("execute_tool b"), headers=JSON)
        assert reply.status_code == 200 and reply.json() == {}
        refused = client.post("/trials/trial_7/v1/traces", content=protobuf_export("chat c"), headers=pb)
        assert refused.status_code == 404 and refused.headers["content-type"] == "application/x-protobuf"
        status = Status()
        status.ParseFromString(refused.content)
        assert status.code == 5 and "trial_7" in status.message
    events = read_span_events(str(run_dir / "trials" / "trial_1")).events
    assert sorted(e["type"] for e in events) == ["llm_call", "tool_call"]


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_odd_http_is_refused_and_the_server_goes_on(collector: OtlpCollector, run_dir: Path) -> None:
    head = b"POST /trials/trial_1/v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    assert raw_request(collector.tcp_port, head + b"Content-Length: lots\r\n\r\n{}").startswith(
        b"HTTP/1.1 400"
    )
    assert raw_request(collector.tcp_port, head + b"Content-Length: 99999999999\r\n\r\n").startswith(
        b"HTTP/1.1 413"
    )
    assert raw_request(collector.tcp_port, head + b"Content-Length: 50\r\n\r\n{").startswith(
        b"HTTP/1.1 400"
    )  # the client gave up half-way: a malformed body
    assert b"400" in raw_request(collector.tcp_port, b"garbage\r\n\r\n")  # not even HTTP: http.server's page
    body = json_export("chat chunked")
    chunked = head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    chunked += b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    assert raw_request(collector.tcp_port, chunked).startswith(b"HTTP/1.1 200")
    url = collector.endpoint_for("trial_1") + "/v1/traces"
    with httpx.Client(timeout=10) as client:  # one kept-alive connection for every export
        for _ in range(3):
            assert client.post(url, content=json_export("chat again"), headers=JSON).status_code == 200
        assert client.get(url).status_code == 405
    assert len(read_span_events(str(run_dir / "trials" / "trial_1")).events) == 4


def test_many_exporters_at_once_write_whole_lines(collector: OtlpCollector, run_dir: Path) -> None:
    url = collector.endpoint_for("trial_1") + "/v1/traces"
    names = [f"chat {'x' * 5000} {i}" for i in range(10)]
    failures: list[int] = []

    def export() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(10):
                status = client.post(url, content=json_export(*names), headers=JSON).status_code
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=export) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    lines = spans_file(run_dir, "trial_1").read_text().splitlines()
    assert len(lines) == 16 * 10 * 10 and all(json.loads(line)["name"] in names for line in lines)


def test_endpoints_name_the_trial_and_close_leaves_nothing_listening(run_dir: Path) -> None:
    private = RunScratch()
    collector = OtlpCollector.start(run_dir, socket_dir=private.path)
    port, path = collector.tcp_port, collector.unix_socket
    assert collector.endpoint_for("trial_1") == f"http://127.0.0.1:{port}/trials/trial_1"
    assert collector.endpoint_for("trial_1", via="unix") == f"http://127.0.0.1:{port}/trials/trial_1"
    assert collector.endpoint_for("trial_1", via="unix", port=4318).startswith("http://127.0.0.1:4318/")
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(InvalidInput):
            collector.endpoint_for(bad)
    with pytest.raises(InvalidInput):
        collector.endpoint_for("trial_1", via="tcp", port=4318)
    env = otel_env(collector.endpoint_for("trial_1") + "/")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://127.0.0.1:{port}/trials/trial_1"
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].endswith("/trials/trial_1/v1/traces")
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # an exporter's kept-alive connection
    kept.request("POST", "/trials/trial_1/v1/traces", json_export("chat a"), JSON)
    assert kept.getresponse().read() == b"{}"
    collector.close()
    collector.close()
    assert kept.sock is not None and kept.sock.recv(1) == b""  # ended by close, not left to time out
    kept.close()
    private.close()
    assert not Path(path).exists() and not Path(path).parent.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
