"""What every instrumented agent here does: ask the (fake) model, then call a tool that times out.

Each agent runs in a process of its own (the SDKs set process-wide tracer providers and patch the
OpenAI client), instrumented the way its SDK's users do it, and prints its trace id as JSON.
"""

from __future__ import annotations

import json
import os
import sys

import openai

QUESTION = "Where is order A-1001?"
SESSION, USER, TAG = "sess-sdk", "user-7", "checkout"


def ask_model() -> str:
    client = openai.OpenAI(base_url=os.environ["FAKE_LLM_URL"], api_key="sk-test-not-a-key", max_retries=0)
    answer = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are a support agent for an online shop."},
            {"role": "user", "content": QUESTION},
        ],
    )
    return answer.choices[0].message.content or ""


def order_lookup_api(order_id: str) -> str:
    raise TimeoutError(f"orders API timed out after 10s looking up {order_id}")


def report(trace_id: int | str) -> None:
    text = trace_id if isinstance(trace_id, str) else format(trace_id, "032x")
    sys.stdout.write(json.dumps({"trace_id": text}) + "\n")
