"""An LLM call's messages read the same whichever convention recorded them (telemetry.messages)."""

from __future__ import annotations

import json
from typing import Any

from opslab.telemetry import Span
from opslab.telemetry.messages import span_messages, text_of


def llm_span(attributes: dict[str, Any], events: list[dict[str, Any]] | None = None) -> Span:
    return Span(
        trace_id="ab" * 16,
        span_id="cd" * 8,
        parent_span_id=None,
        name="chat",
        start_ns=1,
        end_ns=2,
        attributes=attributes,
        resource={},
        error=False,
        status_message="",
        events=events or [],
    )


def roles_and_texts(messages: list[Any]) -> list[tuple[str, str | None]]:
    return [(m.role, m.content) for m in messages]


def test_genai_parts_with_a_tool_call_and_its_answer() -> None:
    asked = [
        {"role": "user", "parts": [{"type": "text", "content": "Where is A-1001?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"id": "A-1001"}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "shipped"}]},
    ]
    answered = [
        {"role": "assistant", "parts": [{"type": "text", "content": "It shipped."}], "finish_reason": "stop"}
    ]
    inputs, outputs = span_messages(
        llm_span(
            {
                "gen_ai.input.messages": json.dumps(asked),
                "gen_ai.output.messages": json.dumps(answered),
                "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
            }
        )
    )
    assert roles_and_texts(inputs) == [
        ("system", "Be brief."),
        ("user", "Where is A-1001?"),
        ("assistant", None),
        ("tool", "shipped"),
    ]
    call = inputs[2].tool_calls[0]
    assert (call.id, call.name, json.loads(call.arguments or "")) == ("call_1", "lookup", {"id": "A-1001"})
    assert inputs[3].tool_call_id == "call_1"
    assert roles_and_texts(outputs) == [("assistant", "It shipped.")] and outputs[0].finish_reason == "stop"
    assert text_of(inputs, role="user", last=True) == "Where is A-1001?"


def test_openinference_flattened_messages() -> None:
    inputs, outputs = span_messages(
        llm_span(
            {
                "openinference.span.kind": "LLM",
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "Be brief.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": "Where is A-1001?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"id": "A-1001"}',
            }
        )
    )
    assert roles_and_texts(inputs) == [("system", "Be brief."), ("user", "Where is A-1001?")]
    assert outputs[0].role == "assistant" and outputs[0].tool_calls[0].name == "lookup"


def test_openllmetry_prompt_and_completion() -> None:
    inputs, outputs = span_messages(
        llm_span(
            {
                "llm.request.type": "chat",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "Where is A-1001?",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "It shipped.",
                "gen_ai.completion.0.finish_reason": "stop",
            }
        )
    )
    assert roles_and_texts(inputs) == [("user", "Where is A-1001?")]
    assert roles_and_texts(outputs) == [("assistant", "It shipped.")]


def test_langfuse_generation_input_and_output() -> None:
    inputs, outputs = span_messages(
        llm_span(
            {
                "langfuse.observation.type": "generation",
                "langfuse.observation.input": json.dumps([{"role": "user", "content": "Where is A-1001?"}]),
                "langfuse.observation.output": json.dumps({"role": "assistant", "content": "It shipped."}),
            }
        )
    )
    assert roles_and_texts(inputs) == [("user", "Where is A-1001?")]
    assert roles_and_texts(outputs) == [("assistant", "It shipped.")]


def test_genai_events_as_earlier_instrumentations_wrote_them() -> None:
    events = [
        {"name": "gen_ai.user.message", "time_ns": 1, "attributes": {"content": "Where is A-1001?"}},
        {
            "name": "gen_ai.choice",
            "time_ns": 2,
            "attributes": {"message": json.dumps({"role": "assistant", "content": "It shipped."})},
        },
    ]
    inputs, outputs = span_messages(llm_span({"gen_ai.operation.name": "chat"}, events))
    assert roles_and_texts(inputs) == [("user", "Where is A-1001?")]
    assert roles_and_texts(outputs) == [("assistant", "It shipped.")]


def test_what_no_convention_writes_is_no_messages_and_never_an_error() -> None:
    for attributes in (
        {"gen_ai.input.messages": "not json"},
        {"gen_ai.input.messages": json.dumps({"role": "user"})},
        {
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "a\x00b"}]}]
            )
        },
        {"llm.input_messages.x.message.role": "user"},
        {},
    ):
        assert span_messages(llm_span(attributes)) == ([], []), attributes
