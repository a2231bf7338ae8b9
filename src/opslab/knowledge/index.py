"""The knowledge base: the runbooks shipped with opslab plus a user folder; lookup, search, adding.

Built-in runbooks live in ``opslab/knowledge/runbooks/*.md`` and are read through
``importlib.resources``, so they are found in a wheel as in a source tree. User documents are the
``*.md`` files of one folder (``Settings.resolved_knowledge_dir``). Ids are unique across both: a
user document cannot silently shadow a built-in one.

Loading only parses front matter; the BM25 index is built on the first ``search`` (and kept), so
callers that only look documents up, like the RCA, never import the retrieval library.

``add_document`` writes a new document to a temporary name in the folder, flushes it to disk and
renames it over ``<id>.md`` with ``os.replace``: a reader (or a crash) sees no document or the
whole one, never half of it. The temporary name ends in ``.md.tmp``, so loaders skip it.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from opslab.errors import Conflict, InvalidInput, NotFound
from opslab.knowledge.dense import DenseIndex, fuse
from opslab.knowledge.document import Document, DocumentKind, parse_document, read_text
from opslab.knowledge.plain import is_plain, parse_plain
from opslab.knowledge.retrieval import Bm25Index, snippet

_BUILTIN_PACKAGE = "opslab.knowledge"
_BUILTIN_FOLDER = "runbooks"


Retrieval = Literal["bm25", "dense", "hybrid"]


class Hit(BaseModel):
    """One search result: ``rank`` 1 is the best; ``snippet`` is the line that matched most."""

    document: Document
    score: float = Field(description="BM25, cosine or fused score (only comparable within one search).")
    rank: int = Field(ge=1)
    snippet: str


def builtin_documents() -> list[Document]:
    """The runbooks shipped inside the package, in file-name order."""
    folder = resources.files(_BUILTIN_PACKAGE).joinpath(_BUILTIN_FOLDER)
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".md")), key=lambda e: e.name)
    return [parse_document(e.read_text(encoding="utf-8"), source=e.name, path=Path(str(e))) for e in entries]


def folder_documents(folder: Path) -> list[Document]:
    """The ``*.md`` documents of a user folder (none when it does not exist yet), in file-name order: one
    per file with front matter, one per ``##`` section of a plain Markdown file (``knowledge.plain``)."""
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise InvalidInput.for_field("knowledge_dir", f"{folder} is not a folder")
    files = sorted(p for p in folder.glob("*.md") if p.is_file() and not p.name.startswith("."))
    return [doc for p in files for doc in read_documents(p)]


def read_documents(path: Path) -> list[Document]:
    """The documents of one file: itself when it has front matter, its sections when it is plain."""
    text = read_text(path)
    if is_plain(text):
        return parse_plain(text, name=path.name, path=path)
    return [parse_document(text, source=path.name, path=path)]


class KnowledgeBase:
    """Documents by id, by RCA category, and by BM25 relevance to a free-text query."""

    def __init__(
        self,
        documents: Iterable[Document],
        *,
        builtin_ids: Iterable[str] = (),
        retrieval: Retrieval = "bm25",
    ) -> None:
        self._documents: builtins.list[Document] = []
        self._by_id: dict[str, Document] = {}
        for doc in documents:
            if doc.id in self._by_id:
                paths = [str(d.path or "<text>") for d in (self._by_id[doc.id], doc)]
                raise Conflict(
                    f"document id {doc.id!r} is used twice: {paths[0]} and {paths[1]}",
                    details={"id": doc.id, "paths": paths},
                )
            self._by_id[doc.id] = doc
            self._documents.append(doc)
        self._builtin_ids = frozenset(builtin_ids)
        self._index: Bm25Index | None = None
        self._dense: DenseIndex | None = None
        self._lock = threading.Lock()
        self.retrieval: Retrieval = retrieval

    @classmethod
    def load(
        cls, folder: Path | None = None, *, extra: Sequence[Path] = (), retrieval: Retrieval = "bm25"
    ) -> KnowledgeBase:
        """The built-in runbooks, plus the documents of ``folder`` when given and of each ``extra`` folder
        (e.g. the responder's ``RUNBOOKS_PATH``); ``retrieval`` picks how ``search`` ranks."""
        shipped = builtin_documents()
        user = folder_documents(folder) if folder is not None else []
        for more in extra:
            user.extend(folder_documents(more))
        return cls([*shipped, *user], builtin_ids=(d.id for d in shipped), retrieval=retrieval)

    def __len__(self) -> int:
        return len(self._documents)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._by_id

    def is_builtin(self, doc_id: str) -> bool:
        return doc_id in self._builtin_ids

    def get(self, doc_id: str) -> Document:
        try:
            return self._by_id[doc_id]
        except KeyError:
            raise NotFound(f"no knowledge document {doc_id!r}", details={"id": doc_id}) from None

    def by_category(self, category: str) -> Document | None:
        """The runbook for an RCA category: built-in ones first, then the user's, each in file order."""
        return next((d for d in self._documents if d.kind == "runbook" and category in d.categories), None)

    def search(self, query: str, *, k: int = 5, kind: DocumentKind | None = None) -> builtins.list[Hit]:
        """The ``k`` documents most relevant to ``query``: by BM25 (only documents sharing a word with it),
        by embedding similarity (``dense``), or both fused by reciprocal rank (``hybrid``)."""
        if not query or not query.strip():
            raise InvalidInput.for_field("query", "must not be empty")
        if k < 1:
            raise InvalidInput.for_field("k", "must be at least 1")
        scores = self._scores(query)
        ranked = sorted(
            (
                (score, doc)
                for score, doc in zip(scores, self._documents, strict=True)
                if score > 0 and (kind is None or doc.kind == kind)
            ),
            key=lambda pair: (-pair[0], pair[1].id),
        )
        return [
            Hit(document=doc, score=round(score, 6), rank=i, snippet=snippet(query, _snippet_lines(doc)))
            for i, (score, doc) in enumerate(ranked[:k], start=1)
        ]

    def _scores(self, query: str) -> builtins.list[float]:
        if self.retrieval == "bm25":
            return self._bm25().scores(query)
        dense = self._dense_index().scores(query)
        if self.retrieval == "dense":
            return [max(s, 0.0) for s in dense]
        lexical = self._bm25().scores(query)
        rankings = [_ranking(lexical), _ranking(dense)]
        fused = fuse(rankings)
        return [fused.get(i, 0.0) for i in range(len(self._documents))]

    def _dense_index(self) -> DenseIndex:
        with self._lock:
            if self._dense is None:
                self._dense = DenseIndex([d.searchable_text() for d in self._documents])
            return self._dense

    def _bm25(self) -> Bm25Index:
        with self._lock:
            if self._index is None:
                self._index = Bm25Index([d.searchable_text() for d in self._documents])
            return self._index

    # Last: a method named ``list`` would shadow the builtin in the annotations above.
    def list(self, *, kind: DocumentKind | None = None) -> builtins.list[Document]:
        """Every document (optionally of one kind): built-in ones first, then the user's."""
        return [d for d in self._documents if kind is None or d.kind == kind]


def _ranking(scores: Sequence[float]) -> builtins.list[int]:
    """Positions with a positive score, best first."""
    return sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: -scores[i])


def _snippet_lines(doc: Document) -> Sequence[str]:
    body = [line for line in doc.body.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [*doc.symptoms, *doc.signals, *body, doc.summary, doc.title]


def add_document(source: Path | str, folder: Path) -> Document:
    """Validate ``source`` (a file path, or the document's text itself) and store it as ``folder/<id>.md``.

    Raises ``InvalidInput`` naming the field when the document is invalid and ``Conflict`` when its
    id is already used by a built-in runbook or a document of the folder; nothing is written then.
    """
    if isinstance(source, Path):
        text = read_text(source)
        doc = parse_document(text, source=source.name, path=source)
    else:
        text = source
        doc = parse_document(text)
    existing = KnowledgeBase.load(folder)
    if doc.id in existing:
        where = "a built-in runbook" if existing.is_builtin(doc.id) else str(existing.get(doc.id).path)
        raise Conflict(f"document id {doc.id!r} already exists ({where})", details={"id": doc.id})
    dest = folder / f"{doc.id}.md"
    if dest.exists():
        raise Conflict(f"{dest} already exists", details={"id": doc.id, "path": str(dest)})
    _write_atomically(dest, text if text.endswith("\n") else text + "\n")
    return doc.model_copy(update={"path": dest})


def _write_atomically(dest: Path, text: str) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput.for_field("knowledge_dir", f"cannot create {dest.parent}: {exc}") from None
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=".md.tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
