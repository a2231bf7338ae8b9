"""Where knowledge is read from, in this order: the runbooks shipped inside the package, the user's
folders (``Settings.resolved_knowledge_dir``, the responder's ``RUNBOOKS_PATH``), and single files read
when they exist — by default the AutoOps seed's knowledge base, ``SEED_INCIDENTS``.

Built-in runbooks are read through ``importlib.resources``, so they are found in a wheel as in a source
tree. A folder's ``*.md`` files are read in name order, a file with front matter as one document and a
plain Markdown file as one per ``##`` section (``knowledge.plain``).

``SEED_INCIDENTS`` is relative to the working directory: run opslab in the seed's project folder and its
``agents/responder_agent/knowledge_base/incidents.md`` is part of the knowledge base, without a copy. It
never takes a folder's place: a file a folder already read is not read twice, and a document whose id a
folder already has is skipped (after ``opslab kb add`` of that file, the added copy is the one read).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from opslab.errors import InvalidInput
from opslab.knowledge.document import Document, parse_document, read_text
from opslab.knowledge.plain import is_plain, parse_plain

_BUILTIN_PACKAGE = "opslab.knowledge"
_BUILTIN_FOLDER = "runbooks"

# The AutoOps seed's RAG source, read relative to the working directory when present.
SEED_INCIDENTS = Path("agents/responder_agent/knowledge_base/incidents.md")
DEFAULT_FILES: tuple[Path, ...] = (SEED_INCIDENTS,)


def builtin_documents() -> list[Document]:
    """The runbooks shipped inside the package, in file-name order."""
    folder = resources.files(_BUILTIN_PACKAGE).joinpath(_BUILTIN_FOLDER)
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".md")), key=lambda e: e.name)
    return [parse_document(e.read_text(encoding="utf-8"), source=e.name, path=Path(str(e))) for e in entries]


def read_documents(path: Path) -> list[Document]:
    """The documents of one file: itself when it has front matter, its sections when it is plain."""
    text = read_text(path)
    if is_plain(text):
        return parse_plain(text, name=path.name, path=path)
    return [parse_document(text, source=path.name, path=path)]


def user_documents(folders: Sequence[Path], files: Sequence[Path] = DEFAULT_FILES) -> list[Document]:
    """The documents of ``folders``, then those of each of ``files`` that exists (a relative one from the
    working directory), skipping a file a folder holds and a document whose id a folder has."""
    found: list[Document] = []
    read: set[Path] = set()
    for folder in folders:
        paths = _folder_files(folder)
        read.update(p.resolve() for p in paths)
        found.extend(doc for p in paths for doc in read_documents(p))
    taken = {d.id for d in found}
    for file in files:
        if not file.is_file() or file.resolve() in read:
            continue
        read.add(file.resolve())
        found.extend(d for d in read_documents(file.absolute()) if d.id not in taken)
    return found


def _folder_files(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise InvalidInput.for_field("knowledge_dir", f"{folder} is not a folder")
    return sorted(p for p in folder.glob("*.md") if p.is_file() and not p.name.startswith("."))
