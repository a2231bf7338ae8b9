"""What the spans of one run say together: its models, tags, metadata, prompts, conventions, session
and user, gathered in one pass over the spans' facts (``traces`` maps them onto the run)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opslab.telemetry.conventions import MODEL_KINDS, SpanFacts
from opslab.telemetry.schema import MAX_ID_LEN

MAX_TAGS = 100


@dataclass(slots=True)
class RunFacts:
    models: Counter[str]  # LLM spans per model, in the order the models first appear
    first_model: str | None  # the first model any span names
    explicit_cost: bool  # some span states its cost
    any_usage: bool  # some span states tokens or cost
    tags: list[str]
    metadata: dict[str, Any]  # the run's spans' metadata, the first span's keys winning
    prompts: list[str]
    conventions: list[str]
    session_id: str | None
    user_id: str | None

    @classmethod
    def of(cls, facts: Iterable[SpanFacts]) -> RunFacts:
        """``facts`` in the run's order (its root first)."""
        models: Counter[str] = Counter()
        first_model = session_id = user_id = None
        explicit_cost = any_usage = False
        tags: dict[str, None] = {}
        metadata: list[dict[str, Any]] = []
        prompts: set[str] = set()
        conventions: set[str] = set()
        for f in facts:
            conventions.add(f.convention)
            if f.model:
                if first_model is None:
                    first_model = f.model
                if f.kind in MODEL_KINDS:
                    models[f.model] += 1
            if f.cost_usd is not None:
                explicit_cost = any_usage = True
            elif f.tokens_in is not None or f.tokens_out is not None:
                any_usage = True
            for tag in f.tags:
                if tag.strip():
                    tags.setdefault(tag[:MAX_ID_LEN])
            if f.metadata:
                metadata.append(f.metadata)
            if f.prompt:
                prompts.add(f.prompt)
            if session_id is None and f.session_id:
                session_id = f.session_id
            if user_id is None and f.user_id:
                user_id = f.user_id
        merged: dict[str, Any] = {}
        for m in reversed(metadata):  # the root's keys win
            merged.update(m)
        return cls(
            models=models,
            first_model=first_model,
            explicit_cost=explicit_cost,
            any_usage=any_usage,
            tags=list(tags)[:MAX_TAGS],
            metadata=merged,
            prompts=sorted(prompts),
            conventions=sorted(conventions),
            session_id=session_id,
            user_id=user_id,
        )
