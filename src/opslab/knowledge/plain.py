"""Plain Markdown knowledge: a file without front matter, such as the AutoOps seed's ``incidents.md``.

    # Incidents                                    <- the file's title (else its name)

    ## Out of Memory during Build                  <- one document per level-2 section
    Builds die with "Out of memory".
    Fix: raise the runner memory to 4GB and enable the build cache.

Each ``##`` section becomes an ``incident`` document (a file without sections is one document) with
the id ``<file name>-<section heading>`` as a slug, so a plain file never takes a built-in runbook's id.
Its first paragraph is the summary; its fixes become actions, in order: the text after a ``Fix:``,
``Solution:``, ``Resolution:``, ``Workaround:`` or ``Mitigation:`` label, and the items of a list under
a heading or line with such a name (``### How to fix``). Such documents carry no categories: they are
found by search, never by ``by_category``.
"""

from __future__ import annotations

import re
from pathlib import Path

from opslab.knowledge.document import Document, RunbookAction

_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$")
_H2 = re.compile(r"^##\s+(.+?)\s*#*\s*$")
_FIX_WORDS = (
    r"(?:suggested\s+)?(?:fix(?:es)?|solution|resolution|remediation|workaround|mitigation|how\s+to\s+fix)"
)
# A label opening a line (or a list item) or following a sentence: "… out of memory. Fix: raise …"
_FIX_INLINE = re.compile(
    rf"(?:^\s*(?:[-*+]\s+|\d+\.\s+)?|(?<=[.!?])\s+)[*_]*{_FIX_WORDS}[*_]*\s*:[*_]*\s*(\S.*)$", re.I
)
_FIX_HEADING = re.compile(rf"^\s*(?:#{{3,6}}\s*)?[*_]*{_FIX_WORDS}[*_]*\s*:?[*_]*\s*$", re.I)
_HEADING = re.compile(r"^\s*#{1,6}\s")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.+)$")
_SLUG_RUN = re.compile(r"[^a-z0-9]+")
_TITLE_CHARS = 200


def is_plain(text: str) -> bool:
    """Markdown without a front matter block (a file that opens with ``---`` is read as front matter)."""
    return not text.lstrip("\ufeff").lstrip().startswith("---")


def parse_plain(text: str, *, name: str, path: Path | None = None) -> list[Document]:
    """The documents of a plain Markdown file called ``name`` (its stem prefixes every id)."""
    lines = text.lstrip("\ufeff").splitlines()
    stem = _slug(Path(name).stem) or "notes"
    title = next((m.group(1) for line in lines if (m := _H1.match(line))), None)
    title = title or Path(name).stem.replace("_", " ").replace("-", " ").strip().capitalize() or stem
    sections = _sections(lines)
    if not sections:
        body = [line for line in lines if not _H1.match(line)]
        return [_document(stem, title, body, path)] if any(line.strip() for line in body) else []
    documents: list[Document] = []
    seen: set[str] = set()
    for n, (heading, body) in enumerate(sections, start=1):
        doc_id = f"{stem}-{_slug(heading) or n}"[:100].rstrip("-_")
        while doc_id in seen:
            doc_id = f"{doc_id[:95]}-{n}"
        seen.add(doc_id)
        documents.append(_document(doc_id, heading, body, path))
    return documents


def _sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = []
    for line in lines:
        if m := _H2.match(line):
            sections.append((m.group(1).strip(), []))
        elif sections:
            sections[-1][1].append(line)
    return sections


def _document(doc_id: str, title: str, body: list[str], path: Path | None) -> Document:
    actions = [
        RunbookAction(
            type="process",
            title=_cut(fix),
            description=fix,
            priority="high" if i == 0 else "medium",
        )
        for i, fix in enumerate(_fixes(body))
    ]
    return Document(
        id=doc_id,
        title=_cut(title),
        kind="incident",
        summary=_summary(body),
        actions=actions,
        body="\n".join(body).strip(),
        path=path,
    )


def _fixes(body: list[str]) -> list[str]:
    """Every fix the section states, in order, without repeats."""
    found: list[str] = []
    under_fix = False
    for line in body:
        if _FIX_HEADING.match(line):
            under_fix = True
        elif m := _FIX_INLINE.search(line):
            found.append(m.group(1))
            under_fix = False
        elif under_fix and (m := _ITEM.match(line)):
            found.append(m.group(1))
        elif under_fix and _HEADING.match(line):
            under_fix = False
    cleaned = (_plain(f).rstrip(".") for f in found)
    return list(dict.fromkeys(f[:1].upper() + f[1:] for f in cleaned if f))


def _summary(body: list[str]) -> str:
    """The first paragraph that is neither a heading nor a fix."""
    paragraph: list[str] = []
    for line in body:
        fix = _FIX_INLINE.search(line)
        stripped = (line[: fix.start()] if fix else line).strip()
        if not stripped or _HEADING.match(line) or _FIX_HEADING.match(line):
            if paragraph:
                break
            continue
        paragraph.append(_plain(stripped))
        if fix:
            break
    return " ".join(paragraph)[:2_000]


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("**", "").replace("`", "")).strip()


def _cut(text: str) -> str:
    return text if len(text) <= _TITLE_CHARS else text[: _TITLE_CHARS - 1].rstrip() + "…"


def _slug(text: str) -> str:
    return _SLUG_RUN.sub("-", text.lower()).strip("-")
