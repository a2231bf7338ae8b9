"""The messages of an LLM call, whichever convention wrote them, as one shape: a list of ``Message``
(role, text, tool calls, tool call id).

- **OTel GenAI** (current): ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON: ``{role,
  parts: [{type: text, content} | {type: tool_call, id, name, arguments} | {type: tool_call_response, id,
  response}], finish_reason}``) and ``gen_ai.system_instructions``; (earlier) span events
  ``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``, ``gen_ai.tool.message``
  and ``gen_ai.choice`` with their ``content``;
- **OpenInference**: ``llm.input_messages.{i}.message.role`` / ``.content`` / ``.tool_calls.{j}.tool_call.
  function.name`` / ``.arguments``, and ``llm.output_messages.*`` the same;
- **OpenLLMetry**: ``gen_ai.prompt.{i}.role`` / ``.content`` and ``gen_ai.completion.{i}.role`` / ``.content``
  / ``.tool_calls.{j}.name`` / ``.arguments``;
- **Langfuse**: ``langfuse.observation.input`` / ``output`` holding OpenAI-style messages (a list, or an
  object with ``messages``), or plain text.

Text is kept up to ``MESSAGE_CHARS`` a message and ``MAX_MESSAGES`` messages a side; nothing here raises
for what a span holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_json

from opslab.telemetry.conventions import parse_json_text
from opslab.telemetry.otlp import Span
from opslab.telemetry.schema import Message, ToolCallMessage

MESSAGE_CHARS = 20_000
MAX_MESSAGES = 200
_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def span_messages(span: Span) -> tuple[list[Message], list[Message]]:
    """The input and output messages of an LLM span (both empty when it has none). A span that cannot
    be read as messages has none: its attributes are still shown as they are."""
    a = span.attributes
    if not span.events and _MESSAGE_KEYS.isdisjoint(a) and not _prefixed(a):
        return [], []  # no reader below would find any (most spans): spare each its look
    for read in (_genai, _openinference, _openllmetry, _langfuse, _genai_events):
        try:
            found = read(a, span)
        except (ValueError, TypeError):  # a shape no convention writes: not messages
            continue
        if found[0] or found[1]:
            return found
    return [], []


# Every key a reader below takes messages from, or needs to look further (events aside).
_MESSAGE_KEYS = frozenset({"gen_ai.input.messages", "gen_ai.output.messages", "langfuse.observation.type"})
_MESSAGE_PREFIXES = ("llm.input_messages.", "llm.output_messages.", "gen_ai.prompt.", "gen_ai.completion.")


def _prefixed(a: Mapping[str, Any]) -> bool:
    for key in a:  # noqa: SIM110 (a plain loop: half the cost of any() over a generator, on every LLM span)
        if key.startswith(_MESSAGE_PREFIXES):
            return True
    return False


def text_of(messages: list[Message], *, role: str | None = None, last: bool = False) -> str | None:
    """The text of the first (``last``: the last) message with text, of ``role`` when given."""
    picked = [m for m in messages if m.content and (role is None or m.role == role)]
    if not picked:
        return None
    return (picked[-1] if last else picked[0]).content


# --- readers ---------------------------------------------------------------------------------------


def _genai(a: Mapping[str, Any], _: Span) -> tuple[list[Message], list[Message]]:
    inputs = _parts_messages(_json(a.get("gen_ai.input.messages")))
    system = _json(a.get("gen_ai.system_instructions"))
    if system is not None and inputs:
        inputs.insert(0, Message(role="system", content=_text_of_parts(system)))
    return inputs, _parts_messages(_json(a.get("gen_ai.output.messages")))


def _genai_events(_: Mapping[str, Any], span: Span) -> tuple[list[Message], list[Message]]:
    inputs: list[Message] = []
    outputs: list[Message] = []
    for ev in span.events:
        ea = ev.get("attributes") or {}
        content = ea.get("content", ea.get("gen_ai.event.content"))
        if ev["name"] in _EVENT_ROLES:
            inputs.append(_message(_EVENT_ROLES[ev["name"]], content, ea.get("tool_calls"), ea.get("id")))
        elif ev["name"] == "gen_ai.choice":
            message = _json(ea.get("message"))
            if isinstance(message, Mapping):
                outputs.append(_openai_message(message) or Message(role="assistant"))
            else:
                outputs.append(_message("assistant", content, ea.get("tool_calls"), None))
    return inputs[:MAX_MESSAGES], outputs[:MAX_MESSAGES]


def _openinference(a: Mapping[str, Any], _: Span) -> tuple[list[Message], list[Message]]:
    return _indexed(a, "llm.input_messages.", "message."), _indexed(a, "llm.output_messages.", "message.")


def _openllmetry(a: Mapping[str, Any], _: Span) -> tuple[list[Message], list[Message]]:
    return _indexed(a, "gen_ai.prompt.", ""), _indexed(a, "gen_ai.completion.", "")


def _langfuse(a: Mapping[str, Any], _: Span) -> tuple[list[Message], list[Message]]:
    if "langfuse.observation.type" not in a:
        return [], []
    kind = a.get("langfuse.observation.type")
    if kind not in ("generation", "embedding"):
        return [], []
    return (
        _loose(_json(a.get("langfuse.observation.input")), "user"),
        _loose(_json(a.get("langfuse.observation.output")), "assistant"),
    )


# --- shapes ----------------------------------------------------------------------------------------

_INDEXED = re.compile(r"^(\d+)\.(.+)$")


def _indexed(a: Mapping[str, Any], prefix: str, inner: str) -> list[Message]:
    """Flattened messages: ``{prefix}{i}.{inner}role`` …, tool calls under ``{inner}tool_calls.{j}.``."""
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in a.items():
        if not key.startswith(prefix):
            continue
        match = _INDEXED.match(key[len(prefix) :])
        if match is None:
            continue
        by_index.setdefault(int(match[1]), {})[match[2].removeprefix(inner)] = value
    out = []
    for i in sorted(by_index)[:MAX_MESSAGES]:
        fields = by_index[i]
        calls: dict[int, dict[str, Any]] = {}
        for key, value in fields.items():
            m = re.match(r"^tool_calls\.(\d+)\.(?:tool_call\.)?(?:function\.)?(.+)$", key)
            if m:
                calls.setdefault(int(m[1]), {})[m[2]] = value
        tool_calls = [
            ToolCallMessage(
                id=_str(c.get("id")), name=str(c.get("name") or "tool"), arguments=_clip(c.get("arguments"))
            )
            for _, c in sorted(calls.items())
        ]
        content = fields.get("content")
        if content is None and "contents.0.message_content.text" in fields:
            content = fields["contents.0.message_content.text"]
        out.append(
            Message(
                role=str(fields.get("role") or "user")[:64],
                content=_clip(content),
                tool_calls=tool_calls,
                tool_call_id=_str(fields.get("tool_call_id")),
                finish_reason=_str(fields.get("finish_reason")),
            )
        )
    return out


def _parts_messages(value: Any) -> list[Message]:
    """GenAI's ``[{role, parts: [...]}]``; OpenAI-style messages are taken too."""
    if not isinstance(value, list):
        return []
    out = []
    for item in value[:MAX_MESSAGES]:
        if not isinstance(item, Mapping):
            continue
        if "parts" not in item:
            found = _openai_message(item)
            if found is not None:
                out.append(found)
            continue
        texts, calls, answered = [], [], None
        for part in item.get("parts") or []:
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("content") or ""))
            elif kind == "tool_call":
                calls.append(
                    ToolCallMessage(
                        id=_str(part.get("id")),
                        name=str(part.get("name") or "tool"),
                        arguments=_clip(part.get("arguments")),
                    )
                )
            elif kind == "tool_call_response":
                answered = _str(part.get("id"))
                texts.append(_clip(part.get("response")) or "")
        out.append(
            Message(
                role=str(item.get("role") or "user")[:64],
                content=_clip("\n".join(t for t in texts if t)) or None,
                tool_calls=calls,
                tool_call_id=answered,
                finish_reason=_str(item.get("finish_reason")),
            )
        )
    return out


def _openai_message(item: Mapping[str, Any]) -> Message | None:
    """``{role, content, tool_calls: [{id, function: {name, arguments}}], tool_call_id}``."""
    if "role" not in item:
        return None
    calls = [_call(c) for c in _json(item.get("tool_calls")) or [] if isinstance(c, Mapping)]
    return Message(
        role=str(item.get("role"))[:64],
        content=_text_of_parts(item.get("content")),
        tool_calls=calls,
        tool_call_id=_str(item.get("tool_call_id")),
        finish_reason=_str(item.get("finish_reason")),
    )


def _loose(value: Any, role: str) -> list[Message]:
    """Langfuse's free input or output: messages, ``{messages: [...]}``, one message, or text."""
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if isinstance(value, list):
        found = [m for m in (_openai_message(v) for v in value[:MAX_MESSAGES] if isinstance(v, Mapping)) if m]
        if found:
            return found
    if isinstance(value, Mapping):
        one = _openai_message(value)
        if one is not None:
            return [one]
    if value is None or value == "":
        return []
    return [Message(role=role, content=_clip(value))]


def _message(role: str, content: Any, tool_calls: Any, call_id: Any) -> Message:
    calls = [_call(c) for c in _json(tool_calls) or [] if isinstance(c, Mapping)]
    return Message(
        role=role, content=_text_of_parts(_json(content)), tool_calls=calls, tool_call_id=_str(call_id)
    )


def _call(call: Mapping[str, Any]) -> ToolCallMessage:
    """A tool call as OpenAI (``{id, function: {name, arguments}}``), GenAI parts or flattened keys say."""
    fn = call.get("function")
    named: Mapping[str, Any] = fn if isinstance(fn, Mapping) else call
    return ToolCallMessage(
        id=_str(call.get("id")),
        name=str(named.get("name") or "tool")[:200],
        arguments=_clip(named.get("arguments")),
    )


def _text_of_parts(value: Any) -> str | None:
    """Text from a string, or from content parts (``[{type: text, text|content}]``)."""
    if value is None:
        return None
    if isinstance(value, list):
        texts = [
            str(p.get("text") or p.get("content") or "") if isinstance(p, Mapping) else str(p) for p in value
        ]
        return _clip("\n".join(t for t in texts if t)) or None
    return _clip(value)


def _json(value: Any) -> Any:
    return parse_json_text(value)


def _str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)[:200]


def _clip(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else to_json(value, fallback=str).decode()
    return text[:MESSAGE_CHARS]
