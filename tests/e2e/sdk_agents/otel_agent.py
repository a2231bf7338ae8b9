"""The OpenTelemetry SDK with gzip on: GenAI spans by hand, usage on the agent span and its LLM child."""

from __future__ import annotations

import json
import os

from common import QUESTION, ask_model, order_lookup_api, report
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

provider = TracerProvider(resource=Resource.create({"service.name": "genai-app"}))
provider.add_span_processor(
    BatchSpanProcessor(
        OTLPSpanExporter(
            endpoint=f"{os.environ['OPSLAB_URL']}/v1/traces",
            headers={"X-Ingest-Secret": os.environ["INGEST_SECRET"]},
            compression=Compression.Gzip,
        )
    )
)
tracer = provider.get_tracer("support-agent")
with tracer.start_as_current_span("invoke_agent support") as agent:
    agent.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"})
    agent.set_attribute("gen_ai.input.messages", json.dumps([{"role": "user", "content": QUESTION}]))
    with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
        chat.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"})
        ask_model()
        usage = json.loads(os.environ["EXPECTED_USAGE"])
        chat.set_attributes({"gen_ai.usage.input_tokens": usage[0], "gen_ai.usage.output_tokens": usage[1]})
    # The agent span repeats its child's usage, as the conventions allow: it must not count twice.
    agent.set_attributes({"gen_ai.usage.input_tokens": usage[0], "gen_ai.usage.output_tokens": usage[1]})
    with tracer.start_as_current_span("execute_tool order_lookup_api") as tool:
        tool.set_attributes(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "order_lookup_api",
                "gen_ai.tool.call.arguments": json.dumps({"order_id": "A-1001"}),
            }
        )
        try:
            order_lookup_api("A-1001")
        except TimeoutError as exc:
            tool.record_exception(exc)
            tool.set_attribute("error.type", "TimeoutError")
            tool.set_status(Status(StatusCode.ERROR, str(exc)))
    agent.set_status(Status(StatusCode.ERROR, "order lookup failed"))
    trace_id = agent.get_span_context().trace_id
provider.force_flush()
provider.shutdown()
report(trace_id)
