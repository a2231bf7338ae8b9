"""The convention-free facts of one span, and the closed sets they are drawn from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Convention = Literal["openinference", "openllmetry", "langfuse", "genai"]
SpanKind = Literal[
    "agent", "chain", "llm", "embedding", "tool", "retriever", "guardrail", "evaluator", "span"
]
AGENT_LIKE: frozenset[str] = frozenset({"agent", "chain"})
MODEL_KINDS: frozenset[str] = frozenset({"llm", "embedding"})


@dataclass(slots=True)
class SpanFacts:
    """The convention-free reading of one span."""

    convention: Convention
    kind: SpanKind
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    input: Any = None
    output: Any = None
    agent_name: str | None = None
    agent_version: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    tool_args: Any = None
    tool_result: Any = None
    error_type: str | None = None
    failed: bool = False
    status_code: int | None = None
    session_id: str | None = None
    user_id: str | None = None
    conversation_id: str | None = None
    environment: str | None = None
    tags: Sequence[str] = ()  # never changed in place (a reader assigns new ones): no list for each span
    metadata: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None

    @property
    def has_usage(self) -> bool:
        return self.tokens_in is not None or self.tokens_out is not None
