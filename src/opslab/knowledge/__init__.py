"""Runbooks and past incidents as Markdown documents with front matter (or plain Markdown, one incident
per ``##`` section), indexed for BM25 retrieval (optionally dense embeddings, or both fused).

Pure domain: files in, typed documents out. ``KnowledgeBase.load(folder)`` reads the runbooks shipped
with opslab plus a user folder, and the AutoOps seed's ``SEED_INCIDENTS`` file when the working directory
has it; ``search`` ranks them for a free-text symptom — errors normalised and their known wordings mapped
to shared concepts (``analyze``) — ``by_category`` gives the runbook an RCA category cites, and
``add_document`` / ``add_documents`` store a validated new file atomically.
"""

from opslab.knowledge.analysis import analyze, normalize, tokenize
from opslab.knowledge.dense import dense_available
from opslab.knowledge.document import (
    DOCUMENT_SCHEMA_VERSION,
    ActionType,
    Document,
    DocumentKind,
    Remediation,
    RunbookAction,
    parse_document,
    read_document,
)
from opslab.knowledge.index import Hit, KnowledgeBase, Retrieval, add_document, add_documents
from opslab.knowledge.plain import parse_plain
from opslab.knowledge.sources import SEED_INCIDENTS, builtin_documents, read_documents

__all__ = [
    "DOCUMENT_SCHEMA_VERSION",
    "SEED_INCIDENTS",
    "ActionType",
    "Document",
    "DocumentKind",
    "Hit",
    "KnowledgeBase",
    "Remediation",
    "Retrieval",
    "RunbookAction",
    "add_document",
    "add_documents",
    "analyze",
    "builtin_documents",
    "dense_available",
    "normalize",
    "parse_document",
    "parse_plain",
    "read_document",
    "read_documents",
    "tokenize",
]
