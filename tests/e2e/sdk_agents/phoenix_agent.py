"""Arize Phoenix: ``phoenix.otel.register`` + the OpenInference OpenAI instrumentation, pointed at opslab."""

from __future__ import annotations

import json
import os

from common import QUESTION, SESSION, TAG, USER, ask_model, order_lookup_api, report
from openinference.instrumentation import using_attributes
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.trace import Status, StatusCode
from phoenix.otel import register

# The two lines a Phoenix user changes: the endpoint (and, with a secret, the header).
provider = register(
    endpoint=f"{os.environ['OPSLAB_URL']}/v1/traces",
    headers={"X-Ingest-Secret": os.environ["INGEST_SECRET"]},
    project_name="support",
    set_global_tracer_provider=False,
    verbose=False,
)
OpenAIInstrumentor().instrument(tracer_provider=provider)
tracer = provider.get_tracer("support-agent")

with (
    using_attributes(session_id=SESSION, user_id=USER, tags=[TAG]),
    tracer.start_as_current_span(
        "support-agent", attributes={"openinference.span.kind": "AGENT", "input.value": QUESTION}
    ) as agent,
):
    ask_model()
    with tracer.start_as_current_span(
        "order_lookup_api",
        attributes={
            "openinference.span.kind": "TOOL",
            "tool.name": "order_lookup_api",
            "tool.parameters": json.dumps({"order_id": "A-1001"}),
        },
    ) as tool:
        try:
            order_lookup_api("A-1001")
        except TimeoutError as exc:
            tool.record_exception(exc)
            tool.set_status(Status(StatusCode.ERROR, str(exc)))
    agent.set_status(Status(StatusCode.ERROR, "order lookup failed"))
    trace_id = agent.get_span_context().trace_id

provider.force_flush()
provider.shutdown()
report(trace_id)
