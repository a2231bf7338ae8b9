"""Lexical retrieval: our tokenizer, a BM25 index (bm25s) and the snippet shown beside a hit.

bm25s is imported when the first index is built, not with this module: it pulls in SciPy (~0.5 s),
which the RCA (it only reads runbooks by category) and ``opslab --help`` should not pay.

Tokens are lowercase runs of letters and digits, so ``tool_schema_mismatch``, ``HTTP-422`` and
``rate-limited`` split into words a query can meet, and status codes stay searchable; English
stopwords (bm25s's list) are dropped. Scoring is BM25 (Lucene variant, k1=1.5, b=0.75) over every
document at once, so results depend only on the query and the documents: ties are broken by id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from opslab.knowledge.analysis import analyze, tokenize

_SNIPPET_CHARS = 160


class Bm25Index:
    """BM25 scores of a fixed list of texts; position ``i`` of ``scores`` is text ``i``."""

    def __init__(self, texts: Sequence[str]) -> None:
        import bm25s  # type: ignore[import-untyped]

        corpus = [analyze(t) for t in texts]
        self._size = len(corpus)
        self._vocab: frozenset[str] = frozenset(w for doc in corpus for w in doc)
        self._retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
        if self._vocab:
            self._retriever.index(corpus, show_progress=False)

    def __len__(self) -> int:
        return self._size

    def scores(self, query: str) -> list[float]:
        """One score per text (0 when it shares no word with the query)."""
        tokens = [t for t in analyze(query, query=True) if t in self._vocab]
        if not tokens:
            return [0.0] * self._size
        return [float(s) for s in self._retriever.get_scores(tokens)]


def snippet(query: str, candidates: Sequence[str]) -> str:
    """The candidate line sharing most words with the query (first wins a tie), cut to one line."""
    wanted = set(tokenize(query))
    best, best_overlap = "", -1
    for raw in candidates:
        line = _plain(raw)
        if not line:
            continue
        overlap = len(wanted & set(tokenize(line)))
        if overlap > best_overlap:
            best, best_overlap = line, overlap
    return _cut(best)


def _plain(line: str) -> str:
    """A Markdown line as text: no heading marks, bullets, bold or code ticks (underscores are words)."""
    text = line.strip().lstrip("#").strip()
    text = re.sub(r"^([-*+]|\d+\.)\s+", "", text)
    return text.replace("`", "").replace("**", "").strip()


def _cut(text: str) -> str:
    return text if len(text) <= _SNIPPET_CHARS else text[: _SNIPPET_CHARS - 1].rstrip() + "…"
