"""The knowledge base: the runbooks shipped with opslab plus the user's folders; lookup, search, adding.

What is read, and from where, is ``knowledge.sources``: the built-in runbooks, the knowledge folder
(``Settings.resolved_knowledge_dir``) and any extra ones, and the AutoOps seed's ``incidents.md`` when
the working directory has it. Ids are unique across all of them: a user document cannot silently
shadow a built-in one.

Loading only parses the files; the BM25 index is built on the first ``search`` (and kept), so
callers that only look documents up, like the RCA, never import the retrieval library.

``add_document`` (front matter) and ``add_documents`` (any Markdown file: front matter, or plain with
one incident per ``##`` section) write the file to a temporary name in the folder, flush it to disk and
rename it over ``<id>.md`` (a plain file: its own name) with ``os.replace``: a reader (or a crash) sees
no document or the whole one, never half of it. The temporary name ends in ``.md.tmp``, so loaders
skip it.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from opslab.errors import Conflict, InvalidInput, NotFound
from opslab.knowledge.dense import DenseIndex, fuse
from opslab.knowledge.document import Document, DocumentKind, invalid, parse_document, read_text
from opslab.knowledge.plain import is_plain, parse_plain
from opslab.knowledge.retrieval import Bm25Index, snippet
from opslab.knowledge.sources import DEFAULT_FILES, builtin_documents, user_documents

Retrieval = Literal["bm25", "dense", "hybrid"]


class Hit(BaseModel):
    """One search result: ``rank`` 1 is the best; ``snippet`` is the line that matched most."""

    document: Document
    score: float = Field(description="BM25, cosine or fused score (only comparable within one search).")
    rank: int = Field(ge=1)
    snippet: str


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
        cls,
        folder: Path | None = None,
        *,
        extra: Sequence[Path] = (),
        files: Sequence[Path] = DEFAULT_FILES,
        retrieval: Retrieval = "bm25",
    ) -> KnowledgeBase:
        """The built-in runbooks, plus the documents of ``folder`` when given and of each ``extra`` folder
        (e.g. the responder's ``RUNBOOKS_PATH``), plus each of ``files`` that exists — by default the
        AutoOps seed's ``agents/responder_agent/knowledge_base/incidents.md`` in the working directory,
        never in a folder's place (``knowledge.sources``); ``files=()`` reads none. ``retrieval`` picks
        how ``search`` ranks."""
        shipped = builtin_documents()
        folders = [*([folder] if folder is not None else []), *extra]
        user = user_documents(folders, files)
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
    """Validate ``source`` (a file path, or the document's text itself) — Markdown with front matter —
    and store it as ``folder/<id>.md``.

    Raises ``InvalidInput`` naming the field when the document is invalid and ``Conflict`` when its
    id is already used by a built-in runbook or a document of the folder; nothing is written then.
    """
    if isinstance(source, Path):
        text = read_text(source)
        doc = parse_document(text, source=source.name, path=source)
    else:
        text = source
        doc = parse_document(text)
    dest = folder / f"{doc.id}.md"
    _store(text, [doc], dest)
    return doc.model_copy(update={"path": dest})


def add_documents(source: Path, folder: Path) -> list[Document]:
    """Validate the Markdown file ``source`` and store it in ``folder``; the documents added.

    A file with front matter is one document, stored as ``<id>.md`` (``add_document``). A plain Markdown
    file is stored under its own name (``incidents.md``) and adds one incident per ``##`` section, ids
    ``<name>-<heading>``; an empty one, or one with nothing but a title, is ``InvalidInput`` naming it.
    ``Conflict`` when an id or the file name is already taken; nothing is written then.
    """
    text = read_text(source)
    if not is_plain(text):
        return [add_document(source, folder)]
    if not text.lstrip("\ufeff").strip():
        raise invalid(source.name, "file", "empty: nothing to add")
    # Stored under its own name, which the loader derives the same ids from; never hidden (loaders skip
    # dot files) and always ``.md`` (loaders read no other).
    dest = folder / f"{source.stem.lstrip('.') or 'notes'}.md"
    docs = parse_plain(text, name=dest.name, path=dest)
    if not docs:
        message = "no text under its title: write the incident below it, or one per '##' section"
        raise invalid(source.name, "file", message)
    _store(text, docs, dest)
    return docs


def _store(text: str, docs: Sequence[Document], dest: Path) -> None:
    """Write ``text`` as ``dest`` when no document id of ``docs`` nor ``dest`` itself is taken. Only the
    folder and the built-in runbooks count: a file read from the working directory (``files``) gives way
    to what is added."""
    existing = KnowledgeBase.load(dest.parent, files=())
    for doc in docs:
        if doc.id in existing:
            where = "a built-in runbook" if existing.is_builtin(doc.id) else str(existing.get(doc.id).path)
            raise Conflict(f"document id {doc.id!r} already exists ({where})", details={"id": doc.id})
    if dest.exists():
        raise Conflict(f"{dest} already exists", details={"id": docs[0].id, "path": str(dest)})
    _write_atomically(dest, text if text.endswith("\n") else text + "\n")


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
