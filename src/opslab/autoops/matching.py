"""How surely a knowledge document covers a failed build's error: the fix responder offers a document's fix
only when its confidence reaches ``MIN_CONFIDENCE``; below, the answer is "no known fix", with the nearest
document shown as context.

The confidence, between 0 and 1:

- **1** when the error names the failure the document is about: the document's main failure concept is
  among the error's. The knowledge index maps the known wordings of a failure to one concept term
  (``OOMKilled``, ``exit code 137`` and ``java.lang.OutOfMemoryError`` are one), and a document's main
  concept is the one its title, symptoms and signals name most.
- Otherwise **retrieval's weight on the document**: ``e^score / (e^NONE_SCORE + Σ e^score)``, the sum
  over every document of any domain. A BM25 score adds up log-odds of relevance, so this reads as the
  probability that this document is the relevant one, with "none of them" an alternative worth a score
  of ``NONE_SCORE``. It is low when the error shares only common words with the document, and when
  another document fits it as well: ``ssh: connect to host … Connection timed out`` fits the agent
  runtime's target-down runbook better than the Prometheus one, so it is no build failure we know.

The scores are always BM25 (with dense or hybrid retrieval the document is still ranked that way, then
weighed by its BM25 score), and the query leaves out words that name no failure ("it may have been",
"you"): the index's stopword list is short, and "may have" once tied a Gradle daemon crash to the
image-pull runbook's "You have reached your pull rate limit".

``NONE_SCORE`` and ``MIN_CONFIDENCE`` are measured on labelled errors (tests/unit/test_autoops_no_known_fix.py
computes the figures; docs/autoops.md gives them).
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from opslab.knowledge import Document, Hit, KnowledgeBase, analyze, normalize, tokenize

# The score of "no document covers this error", and the confidence a document's fix needs (measured).
NONE_SCORE = 5.0
MIN_CONFIDENCE = 0.09

MatchBasis = Literal["error_class", "failure_named", "retrieval"]

# Words that name no failure, dropped from the query. None of them is part of a wording the knowledge
# index maps to a failure concept ("could not resolve", "does not exist", "took longer than" keep theirs):
# a test holds the concepts of every labelled error unchanged by the cleaning.
_FUNCTION_WORDS = (
    "have has had having may might been being must shall should would it its you your yours we our ours "
    "they them he she his her him i me my mine us which who whom whose what when where why how please "
    "also just very"
)
_FUNCTION = re.compile(r"\b(?:" + "|".join(_FUNCTION_WORDS.split()) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Match:
    """The document retrieval found for an error, its BM25 score and how surely it covers the error."""

    document: Document
    score: float
    confidence: float
    basis: MatchBasis

    @property
    def offered(self) -> bool:
        return self.confidence >= MIN_CONFIDENCE


def content_query(text: str) -> str:
    """``text`` without the words that name no failure (itself when nothing else is left)."""
    cleaned = _FUNCTION.sub(" ", text)
    return cleaned if cleaned.strip() else text


def failure_concepts(text: str) -> set[str]:
    """The failure concepts the knowledge index finds in ``text``: its terms that are not its words."""
    return set(analyze(text, query=True)) - set(tokenize(normalize(text)))


def main_failures(doc: Document) -> set[str]:
    """The concept(s) a document's title, symptoms and signals name most often (none for a plain note)."""
    counts: Counter[str] = Counter()
    for line in (doc.title, *doc.symptoms, *doc.signals):
        counts.update(failure_concepts(line))
    if not counts:
        return set()
    most = max(counts.values())
    return {concept for concept, n in counts.items() if n == most}


def share(score: float, scores: Sequence[float], *, none: float = NONE_SCORE) -> float:
    """Retrieval's weight on one score among ``scores`` (every document's), "none" scoring ``none``."""
    top = max(none, *scores)
    total = math.exp(none - top) + sum(math.exp(s - top) for s in scores)
    return math.exp(score - top) / total


def best_match(
    query: str, kb: KnowledgeBase, *, accept: Callable[[Document], bool], none: float = NONE_SCORE
) -> Match | None:
    """The best document ``accept`` takes for ``query``, with its confidence; ``None`` when no such
    document shares a word with it. ``none``: the score of "no document" (calibration varies it)."""
    query = content_query(query)
    hits = _search(kb, query)
    ranked = [h for h in hits if accept(h.document)]
    if not ranked:
        return None
    doc = ranked[0].document
    lexical = hits if kb.retrieval == "bm25" else _search(_bm25(kb), query)
    scores = {h.document.id: h.score for h in lexical}
    score = scores.get(doc.id, 0.0)
    if main_failures(doc) & failure_concepts(query):
        return Match(doc, score, 1.0, "failure_named")
    return Match(doc, score, share(score, list(scores.values()), none=none), "retrieval")


def scored(doc: Document, query: str, kb: KnowledgeBase, basis: MatchBasis) -> Match:
    """``doc`` as the answer for another reason than its rank (a CI's classification): confidence 1."""
    found = {h.document.id: h.score for h in _search(_bm25(kb), content_query(query))}
    return Match(doc, found.get(doc.id, 0.0), 1.0, basis)


def _search(kb: KnowledgeBase, query: str) -> list[Hit]:
    return kb.search(query, k=max(1, len(kb)))


_lexical: weakref.WeakKeyDictionary[KnowledgeBase, KnowledgeBase] = weakref.WeakKeyDictionary()
_lexical_lock = threading.Lock()


def _bm25(kb: KnowledgeBase) -> KnowledgeBase:
    """``kb`` itself when it ranks by BM25, else one BM25 view of its documents (kept while it lives)."""
    if kb.retrieval == "bm25":
        return kb
    with _lexical_lock:
        view = _lexical.get(kb)
        if view is None:
            view = _lexical[kb] = KnowledgeBase(kb.list(), retrieval="bm25")
        return view
