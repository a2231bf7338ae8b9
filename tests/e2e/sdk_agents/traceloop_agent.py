"""OpenLLMetry (Traceloop SDK): ``Traceloop.init`` with its OpenAI instrumentation, pointed at opslab."""

from __future__ import annotations

import contextlib
import os

from common import SESSION, USER, ask_model, order_lookup_api, report
from opentelemetry import trace
from traceloop.sdk import Traceloop
from traceloop.sdk.decorators import tool, workflow
from traceloop.sdk.instruments import Instruments

# The two lines an OpenLLMetry user changes: the endpoint (and, with a secret, the header).
Traceloop.init(
    app_name="tl-app",
    api_endpoint=os.environ["OPSLAB_URL"],
    headers={"X-Ingest-Secret": os.environ["INGEST_SECRET"]},
    disable_batch=True,
    telemetry_enabled=False,
    instruments={
        Instruments.OPENAI
    },  # the one library this agent uses (else it loads forty instrumentations)
)

found: dict[str, int] = {}


@tool(name="order_lookup_api")
def lookup(order_id: str) -> str:
    return order_lookup_api(order_id)


@workflow(name="support")
def support() -> None:
    found["trace_id"] = trace.get_current_span().get_span_context().trace_id
    Traceloop.set_association_properties({"session_id": SESSION, "user_id": USER})
    ask_model()
    lookup("A-1001")


with contextlib.suppress(TimeoutError):
    support()
trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
report(found["trace_id"])
