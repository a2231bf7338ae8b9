"""The fix responder: a failed build's error → the runbook that fixes it (retrieval over ``knowledge/``),
a suggestion that cites that document, and the configuration change it implies (a prior for the optimizer,
never applied blindly). "No known fix" when nothing in the build domain matches well enough.

An optional LLM may phrase the suggestion; like RCA's, it never gets the last word: an answer that does not
cite the retrieved document is dropped and the runbook's own words stand.
"""

from __future__ import annotations

import json
import logging
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from opslab.autoops.model import ERROR_TEXTS, ErrorClass
from opslab.knowledge import Document, KnowledgeBase

log = logging.getLogger("opslab.autoops")
# Categories of the build pipeline's own runbooks (and of incidents learned from builds).
DOMAIN_PREFIXES = ("build_",)
DOMAIN_CATEGORIES = frozenset({"prometheus_target_down", "metrics_404"})
# BM25 score below which a match is a coincidence of words (measured: a matching error scores 3.9-9, an
# unrelated one under 2).
MIN_SCORE = 3.0
NO_FIX = "no known fix: nothing in the knowledge base matches this failure well enough; escalate to a human"


class FixRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    error: str = Field(min_length=1, max_length=20_000, description="The build's error text.")
    status: Literal["failed", "success"] | None = None
    error_class: ErrorClass | None = None
    logs: list[str] = Field(default_factory=list, max_length=200)


class FixSuggestion(BaseModel):
    suggestion: str
    document_id: str | None = Field(description="The runbook or incident the suggestion comes from.")
    score: float = Field(description="Retrieval score of that document (BM25; 0 when none).")
    config_change: dict[str, JsonValue] | None = Field(
        None, description="Build settings the document recommends (a prior for the optimizer)."
    )
    source: Literal["knowledge", "llm", "none"]


class Chat(Protocol):
    def complete(
        self, messages: list[dict[str, str]], *, temperature: float = 0.0, json_mode: bool = True
    ) -> str: ...


def in_domain(doc: Document) -> bool:
    return any(c.startswith(DOMAIN_PREFIXES) or c in DOMAIN_CATEGORIES for c in doc.categories)


def suggest_fix(request: FixRequest, kb: KnowledgeBase, *, chat: Chat | None = None) -> FixSuggestion:
    parts = [request.error, *request.logs[-20:]]
    if request.error_class:
        parts.append(ERROR_TEXTS[request.error_class])
    query = "\n".join(parts)
    hits = [h for h in kb.search(query, k=10) if in_domain(h.document)]
    best = hits[0] if hits and hits[0].score >= MIN_SCORE else None
    doc, score = (best.document, best.score) if best else (None, 0.0)
    if request.error_class and (doc is None or f"build_{request.error_class}" not in doc.categories):
        # The CI already classified the failure: its runbook wins over a lexical near-miss.
        by_class = kb.by_category(f"build_{request.error_class}")
        if by_class is not None:
            doc = by_class
            score = next((h.score for h in hits if h.document.id == by_class.id), MIN_SCORE)
    if doc is None:
        return FixSuggestion(suggestion=NO_FIX, document_id=None, score=0.0, source="none")
    suggestion = doc.actions[0].title if doc.actions else doc.summary
    change = next((dict(r.params) for r in doc.remediation if r.name == "build-config"), None)
    result = FixSuggestion(
        suggestion=suggestion,
        document_id=doc.id,
        score=round(score, 3),
        config_change=change,
        source="knowledge",
    )
    if chat is not None:
        result = _phrase_with_llm(chat, request, doc, result)
    return result


def _phrase_with_llm(chat: Chat, request: FixRequest, doc: Document, found: FixSuggestion) -> FixSuggestion:
    steps = "\n".join(f"- {a.title}: {a.description}" for a in doc.actions)
    messages = [
        {
            "role": "system",
            "content": "You help CI engineers fix failed builds. Answer JSON "
            '{"suggestion": "<one or two sentences>", "document_id": "<the id of the runbook you used>"}. '
            "Use only the runbook given; cite its id.",
        },
        {
            "role": "user",
            "content": f"Build error:\n{request.error[:4000]}\n\nRunbook {doc.id} ({doc.title}):\n{steps}",
        },
    ]
    try:
        answer = json.loads(chat.complete(messages))
    except Exception as exc:  # noqa: BLE001 - a model that fails or rambles leaves the runbook's words
        log.warning("LLM suggestion dropped: %s", exc)
        return found
    if not isinstance(answer, dict) or answer.get("document_id") != doc.id:
        return found  # uncited (or citing something else): dropped
    text = answer.get("suggestion")
    if not isinstance(text, str) or not text.strip():
        return found
    return found.model_copy(update={"suggestion": text.strip()[:1000], "source": "llm"})
