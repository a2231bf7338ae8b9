"""The fix responder: a failed build's error → the runbook that fixes it (retrieval over ``knowledge/``),
a suggestion that cites that document, its steps, and the configuration change it implies (a prior for the
optimizer, never applied blindly). "No known fix" when nothing in the build domain matches well enough.

An optional LLM may phrase the suggestion (``fix_llm``); it never gets the last word: an answer that cites
another document is dropped, its steps must come from the runbook's actions (or are flagged and ranked
below them), and destructive advice is refused (``grounding``).
"""

from __future__ import annotations

from opslab.autoops.fix_llm import phrase_with_llm
from opslab.autoops.model import ERROR_TEXTS
from opslab.autoops.suggestion import Chat, FixAction, FixRequest, FixSuggestion
from opslab.errors import InvalidInput
from opslab.knowledge import Document, KnowledgeBase

# Categories of the build pipeline's own runbooks (and of incidents learned from builds).
DOMAIN_PREFIXES = ("build_",)
DOMAIN_CATEGORIES = frozenset({"prometheus_target_down", "metrics_404"})
# BM25 score below which a match is a coincidence of words (measured on tests/fixtures/autoops/ci_errors.yaml:
# a matching error scores 3.3-26, one no runbook covers under 2).
MIN_SCORE = 3.0
NO_FIX = "no known fix: nothing in the knowledge base matches this failure well enough; escalate to a human"
NOTHING_TO_FIX = "nothing to fix: the build succeeded"


def in_domain(doc: Document) -> bool:
    """A build runbook or incident, or a document without categories (plain Markdown notes such as the
    seed's ``incidents.md``): the agent runtime's runbooks are not about builds."""
    if not doc.categories:
        return True
    return any(c.startswith(DOMAIN_PREFIXES) or c in DOMAIN_CATEGORIES for c in doc.categories)


def suggest_fix(request: FixRequest, kb: KnowledgeBase, *, chat: Chat | None = None) -> FixSuggestion:
    if request.error is None:
        if request.status == "success":
            return FixSuggestion(suggestion=NOTHING_TO_FIX, document_id=None, score=0.0, source="none")
        raise InvalidInput.for_field("error", "a failed build needs its error text")
    doc, score = find_document(request, kb)
    if doc is None:
        return FixSuggestion(suggestion=NO_FIX, document_id=None, score=0.0, source="none")
    steps = [FixAction(text=a.title, from_runbook=True, runbook_action=a.title) for a in doc.actions]
    change = next((dict(r.params) for r in doc.remediation if r.name == "build-config"), None)
    result = FixSuggestion(
        suggestion=steps[0].text if steps else doc.summary or doc.title,
        document_id=doc.id,
        score=round(score, 3),
        config_change=change,
        source="knowledge",
        actions=steps,
    )
    if chat is not None:
        result = phrase_with_llm(chat, request.error, doc, result)
    return result


def find_document(request: FixRequest, kb: KnowledgeBase) -> tuple[Document | None, float]:
    """The build-domain document that best matches the error, with its score (``None`` under MIN_SCORE);
    a CI's own classification wins over a document filed under another build failure."""
    parts = [request.error or "", *request.logs[-20:]]
    if request.error_class:
        parts.append(ERROR_TEXTS[request.error_class])
    hits = [h for h in kb.search("\n".join(parts), k=10) if in_domain(h.document)]
    best = hits[0] if hits and hits[0].score >= MIN_SCORE else None
    doc, score = (best.document, best.score) if best else (None, 0.0)
    category = f"build_{request.error_class}" if request.error_class else None
    if category and (doc is None or (doc.categories and category not in doc.categories)):
        by_class = kb.by_category(category)
        if by_class is not None:
            doc = by_class
            score = next((h.score for h in hits if h.document.id == by_class.id), MIN_SCORE)
    return doc, score
