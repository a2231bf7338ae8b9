"""What one span says, whichever instrumentation wrote it: one reader per semantic convention.

A span is read by the convention its attributes name (chosen per span: an export may mix them), and
every reader falls back to the OpenTelemetry GenAI attributes for what its own convention leaves out:

- **OpenInference** (Arize Phoenix): ``openinference.span.kind`` (AGENT, CHAIN, LLM, TOOL, RETRIEVER …),
  ``llm.model_name``, ``llm.token_count.prompt``/``completion``, ``input.value``/``output.value``,
  ``tool.name``/``tool.parameters``, ``session.id``, ``user.id``, ``tag.tags``, ``metadata``;
- **OpenLLMetry** (Traceloop): ``traceloop.span.kind`` (workflow, task, agent, tool),
  ``traceloop.entity.name``/``input``/``output``, ``traceloop.association.properties.*``,
  ``gen_ai.usage.prompt_tokens``/``completion_tokens``, ``llm.request.type``;
- **Langfuse** (SDK v3+): ``langfuse.observation.type`` (span, generation, agent, tool, chain …),
  ``langfuse.observation.model.name``/``usage_details``/``cost_details``/``input``/``output``/``level``,
  ``langfuse.trace.tags``/``metadata.*``, ``user.id``, ``session.id``;
- **OTel GenAI**: ``gen_ai.operation.name`` (invoke_agent, chat, execute_tool …), ``gen_ai.agent.name``,
  ``gen_ai.request.model``/``response.model``, ``gen_ai.usage.input_tokens``/``output_tokens``,
  ``gen_ai.tool.*``, ``gen_ai.conversation.id``, ``error.type``.
"""

from opslab.telemetry.conventions._facts import AGENT_LIKE, MODEL_KINDS, Convention, SpanFacts, SpanKind
from opslab.telemetry.conventions._read import convention_of, read_span, status_message
from opslab.telemetry.conventions._values import parse_json_text

__all__ = [
    "AGENT_LIKE",
    "MODEL_KINDS",
    "Convention",
    "SpanFacts",
    "SpanKind",
    "convention_of",
    "parse_json_text",
    "read_span",
    "status_message",
]
