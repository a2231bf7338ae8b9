"""The fix responder: a failed build's error → the runbook that fixes it (retrieval over ``knowledge/``),
a suggestion that cites that document, its steps, and the configuration change it implies (a prior for the
optimizer, never applied blindly). "No known fix" when nothing in the build domain covers the error surely
enough (``matching``): then the nearest document is shown as context, never as the fix.

An optional LLM may phrase the suggestion (``fix_llm``); it never gets the last word: an answer that cites
another document is dropped, its steps must come from the runbook's actions (or are flagged and ranked
below them), and destructive advice is refused (``grounding``).
"""

from __future__ import annotations

from opslab.autoops.fix_llm import phrase_with_llm
from opslab.autoops.matching import MIN_CONFIDENCE, Match, best_match, scored
from opslab.autoops.model import ERROR_TEXTS
from opslab.autoops.suggestion import Chat, FixAction, FixRequest, FixSuggestion, NearestDocument
from opslab.errors import InvalidInput
from opslab.knowledge import Document, KnowledgeBase

# Categories of the build pipeline's own runbooks (and of incidents learned from builds).
DOMAIN_PREFIXES = ("build_",)
DOMAIN_CATEGORIES = frozenset({"prometheus_target_down", "metrics_404"})
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
            return FixSuggestion(
                suggestion=NOTHING_TO_FIX,
                document_id=None,
                score=0.0,
                source="none",
                outcome="nothing_to_fix",
            )
        raise InvalidInput.for_field("error", "a failed build needs its error text")
    match = find_match(request, kb)
    if match is None or not match.offered:
        return no_known_fix(match)
    doc = match.document
    steps = [FixAction(text=a.title, from_runbook=True, runbook_action=a.title) for a in doc.actions]
    change = next((dict(r.params) for r in doc.remediation if r.name == "build-config"), None)
    result = FixSuggestion(
        suggestion=steps[0].text if steps else doc.summary or doc.title,
        document_id=doc.id,
        score=round(match.score, 3),
        confidence=round(match.confidence, 3),
        config_change=change,
        source="knowledge",
        actions=steps,
    )
    if chat is not None:
        result = phrase_with_llm(chat, request.error, doc, result)
    return result


def no_known_fix(nearest: Match | None) -> FixSuggestion:
    context = (
        NearestDocument(
            document_id=nearest.document.id,
            title=nearest.document.title,
            score=round(nearest.score, 3),
            confidence=round(nearest.confidence, 3),
            min_confidence=MIN_CONFIDENCE,
        )
        if nearest is not None
        else None
    )
    return FixSuggestion(
        suggestion=NO_FIX, document_id=None, score=0.0, source="none", outcome="no_known_fix", nearest=context
    )


def find_match(request: FixRequest, kb: KnowledgeBase) -> Match | None:
    """The build-domain document that best matches the error, with how surely it covers it; a CI's own
    classification wins over a document filed under another build failure, or over one that does not
    cover the error surely enough."""
    parts = [request.error or "", *request.logs[-20:]]
    if request.error_class:
        parts.append(ERROR_TEXTS[request.error_class])
    query = "\n".join(parts)
    match = best_match(query, kb, accept=in_domain)
    if request.error_class is None:
        return match
    category = f"build_{request.error_class}"
    if match is not None and category in match.document.categories:
        return Match(match.document, match.score, 1.0, "error_class")
    # An incident without categories (the seed's incidents.md) that covers the error keeps it.
    if match is not None and match.offered and not match.document.categories:
        return match
    by_class = kb.by_category(category)
    return scored(by_class, query, kb, "error_class") if by_class is not None else match
