"""The Langfuse SDK (v3+, OpenTelemetry-based) and its OpenAI integration, configured only by the
environment as docs/telemetry.md says: LANGFUSE_BASE_URL is opslab, LANGFUSE_SECRET_KEY the ingest secret."""

from __future__ import annotations

from common import QUESTION, SESSION, TAG, USER, order_lookup_api, report
from langfuse import get_client, propagate_attributes
from langfuse.openai import OpenAI

langfuse = get_client()
client = OpenAI(max_retries=0)  # base URL and key from the environment, as the app already has them

with langfuse.start_as_current_observation(as_type="agent", name="support-agent", input=QUESTION) as agent:
    with propagate_attributes(session_id=SESSION, user_id=USER, tags=[TAG]):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You are a support agent for an online shop."},
                {"role": "user", "content": QUESTION},
            ],
        )
        with langfuse.start_as_current_observation(
            as_type="tool", name="order_lookup_api", input={"order_id": "A-1001"}
        ) as tool:
            try:
                order_lookup_api("A-1001")
            except TimeoutError as exc:
                tool.update(level="ERROR", status_message=str(exc))
        agent.update(level="ERROR", status_message="order lookup failed")
    trace_id = langfuse.get_current_trace_id()

langfuse.flush()
langfuse.shutdown()
report(trace_id or "")
