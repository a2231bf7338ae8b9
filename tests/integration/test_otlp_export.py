"""Spans from the real opentelemetry-sdk, exported by its OTLP/HTTP exporter to a real service."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from opslab.api import create_app
from opslab.config import Settings
from opslab.serving import ServerThread


@pytest.fixture
def server(settings: Settings) -> Iterator[ServerThread]:
    with ServerThread(create_app(settings)) as srv:
        yield srv


def emit_agent_run(provider: TracerProvider) -> str:
    tracer = provider.get_tracer("opslab-test")
    with tracer.start_as_current_span("invoke_agent booking-agent") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "booking-agent")
        root.set_attribute("gen_ai.agent.version", "1.4.0")
        root.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.usage.input_tokens", 300)
            chat.set_attribute("gen_ai.usage.output_tokens", 40)
            with tracer.start_as_current_span("execute_tool payments") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "payments")
                tool.set_attribute("gen_ai.tool.call.id", "call_1")
                tool.set_attribute(
                    "gen_ai.tool.call.arguments", json.dumps({"amount": 10, "api_key": "abc123"})
                )
                tool.set_attribute("error.type", "RateLimitError")
                tool.set_attribute("http.response.status_code", 429)
                tool.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
            chat.add_event("guardrail", {"guardrail.type": "pii", "message": "card number masked"})
        with tracer.start_as_current_span("output filter") as guard:
            guard.set_attribute("openinference.span.kind", "GUARDRAIL")
        root.set_status(Status(StatusCode.ERROR, "payment failed"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    return trace_id


def test_sdk_protobuf_export_becomes_a_run(server: ServerThread) -> None:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "bookings", "deployment.environment": "prod"})
    )
    # One span per export: children reach the service before their root, as in real deployments.
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces")))
    trace_id = emit_agent_run(provider)
    provider.shutdown()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        run = api.get(f"/agent-runs/{trace_id}").json()
        assert (run["agent_name"], run["agent_version"], run["model"]) == (
            "booking-agent",
            "1.4.0",
            "gpt-4o-mini",
        )
        assert run["status"] == "failure" and run["environment"] == "prod" and run["source"] == "otlp"
        assert run["counts"] == {"steps": 1, "tool_calls": 1, "failed_tool_calls": 1, "guardrail_events": 2}
        assert (run["tokens_prompt"], run["tokens_completion"]) == (300, 40)
        items = api.get(f"/agent-runs/{trace_id}/timeline").json()["items"]
        tool = next(i for i in items if i["kind"] == "tool_call")
        assert tool["name"] == "payments" and tool["status"] == "failure" and "429" in tool["summary"]
        # The secret in the tool arguments never reached storage.
        assert "abc123" not in json.dumps(api.get(f"/agent-runs/{trace_id}/timeline").json())


def test_batched_export_and_json_encoding(server: ServerThread, tmp_path: Any) -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces")))
    trace_id = emit_agent_run(provider)
    provider.force_flush()
    provider.shutdown()
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=server.url, timeout=30) as api:
        while api.get(f"/agent-runs/{trace_id}").status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.get(f"/agent-runs/{trace_id}").json()["counts"]["tool_calls"] == 1
        json_body = {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "0af7651916cd43dd8448eb211c80319c",
                                    "spanId": "b7ad6b7169203331",
                                    "name": "invoke_agent planner",
                                    "startTimeUnixNano": "1700000000000000000",
                                    "endTimeUnixNano": "1700000001000000000",
                                    "attributes": [
                                        {
                                            "key": "gen_ai.operation.name",
                                            "value": {"stringValue": "invoke_agent"},
                                        }
                                    ],
                                    "status": {"code": 1},
                                }
                            ]
                        }
                    ]
                }
            ]
        }
        r = api.post("/v1/traces", json=json_body)
        assert (
            r.status_code == 200
            and r.json()["opslab"]["runs"][0]["run_id"] == "0af7651916cd43dd8448eb211c80319c"
        )
        r = api.post(
            "/v1/traces", content=b"\x0a\xff\xff", headers={"content-type": "application/x-protobuf"}
        )
        assert r.status_code == 422
        # A span without ids is refused alone (OTLP's partial success), saying why.
        r = api.post("/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]})
        assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] == 1
        assert "traceId" in r.json()["partialSuccess"]["errorMessage"]
