"""Plain Markdown knowledge: a file without front matter, such as the AutoOps seed's ``incidents.md``.

    # Build Incidents                                  <- the file's title (else its name)

    ## Gradle daemon crash                             <- one incident per level-2 section
    Error: The Gradle Daemon disappeared unexpectedly  <- a signal; also the summary (first paragraph)
    Fix: raise org.gradle.jvmargs -Xmx and disable the daemon on CI runners.   <- an action

Each ``##`` section becomes an ``incident`` document (a file without sections is one document) with
the id ``<file name>-<section heading>`` as an ASCII slug (made unique with ``-2``, ``-3`` …), so a
plain file never takes a built-in runbook's id. Labelled lines keep their meaning:

- ``Fix:``, ``Solution:``, ``Resolution:``, ``Remediation:``, ``Workaround:``, ``Mitigation:`` (at the
  start of a line or after a sentence), and the items of a list under a heading or line with such a
  name (``### How to fix``), become the document's ``actions``, in order: advice for a person (type
  ``process``, the first one ``high``), shown and suggested as written. Free text never becomes a
  typed ``remediation``: what an automated responder may run is only ever written as front matter.
- ``Error:``, ``Error message:``, ``Exception:``, ``Signal:`` lines become ``signals``; ``Symptom:``
  / ``Symptoms:`` lines become ``symptoms`` (a list under such a heading too). Both weigh double in search.
- The first paragraph, labels stripped, is the summary.

Headings and labels inside fenced code blocks are text. The whole section stays the searchable body.
Such documents carry no categories: they are found by search, never by ``by_category``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from opslab.knowledge.document import Document, RunbookAction

Label = Literal["fix", "signal", "symptom"]

_H1 = re.compile(r"^ {0,3}#\s+(.+?)\s*#*\s*$")
_H2 = re.compile(r"^ {0,3}##\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_WORDS: dict[Label, str] = {
    "fix": r"(?:suggested\s+)?(?:fix(?:es)?|solutions?|resolution|remediation|workaround|mitigation"
    r"|how\s+to\s+fix)",
    "signal": r"(?:errors?(?:\s+message)?|exception|signals?)",
    "symptom": r"symptoms?",
}
_LEAD = r"^\s*(?:[-*+]\s+|\d+[.)]\s+)?"
_AFTER_SENTENCE = r"|(?<=[.!?])\s+"
# A label opening a line (or a list item); a fix may also follow a sentence: "… out of memory. Fix: raise …"
_INLINE: dict[Label, re.Pattern[str]] = {
    kind: re.compile(
        rf"(?:{_LEAD}{_AFTER_SENTENCE if kind == 'fix' else ''})[*_]*{words}[*_]*\s*:[*_]*\s*(\S.*)$", re.I
    )
    for kind, words in _WORDS.items()
}
# A heading or a bare label line whose list follows: "### How to fix", "Symptoms:".
_LABEL_HEADING: dict[Label, re.Pattern[str]] = {
    kind: re.compile(rf"^\s*(?:#{{3,6}}\s*)?[*_]*{words}[*_]*\s*:?[*_]*\s*$", re.I)
    for kind, words in _WORDS.items()
}
_HEADING = re.compile(r"^ {0,3}#{1,6}\s")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.+)$")
_SLUG_RUN = re.compile(r"[^a-z0-9]+")
_ID_CHARS = 100
_TITLE_CHARS = 200
_LABEL_CHARS = 500
_SUMMARY_CHARS = 2_000


def is_plain(text: str) -> bool:
    """Markdown without a front matter block (a file that opens with ``---`` is read as front matter)."""
    return not text.lstrip("\ufeff").lstrip().startswith("---")


def parse_plain(text: str, *, name: str, path: Path | None = None) -> list[Document]:
    """The documents of a plain Markdown file called ``name`` (its stem prefixes every id); none when
    it holds no text but a title."""
    lines = _marked(text.lstrip("\ufeff").splitlines())
    stem = _slug(Path(name).stem) or "notes"
    title = next((m.group(1) for line, fenced in lines if not fenced and (m := _H1.match(line))), "")
    title = _plain(title) or Path(name).stem.replace("_", " ").replace("-", " ").strip().capitalize() or stem
    sections = _sections(lines)
    if not sections:
        body = [(line, fenced) for line, fenced in lines if fenced or not _H1.match(line)]
        return [_document(stem, title, body, path)] if any(line.strip() for line, _ in body) else []
    ids = _UniqueIds()
    return [
        _document(ids.take(f"{stem}-{_slug(heading) or n}"), _plain(heading) or heading, body, path)
        for n, (heading, body) in enumerate(sections, start=1)
    ]


def _marked(lines: list[str]) -> list[tuple[str, bool]]:
    """Each line, and whether it is inside (or opens or closes) a fenced code block."""
    inside: str | None = None
    marked: list[tuple[str, bool]] = []
    for line in lines:
        fence = _FENCE.match(line)
        if inside is None and fence:
            inside = fence.group(1)[0]
            marked.append((line, True))
        elif inside is not None:
            marked.append((line, True))
            if fence and fence.group(1)[0] == inside:
                inside = None
        else:
            marked.append((line, False))
    return marked


def _sections(lines: list[tuple[str, bool]]) -> list[tuple[str, list[tuple[str, bool]]]]:
    sections: list[tuple[str, list[tuple[str, bool]]]] = []
    for line, fenced in lines:
        if not fenced and (m := _H2.match(line)):
            sections.append((m.group(1).strip(), []))
        elif sections:
            sections[-1][1].append((line, fenced))
    return sections


class _UniqueIds:
    """Slugs cut to the id length, a repeated one suffixed ``-2``, ``-3`` … (still within the length)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._next: dict[str, int] = {}

    def take(self, wanted: str) -> str:
        base = wanted[:_ID_CHARS].rstrip("-_")
        candidate = base
        while candidate in self._seen:
            n = self._next.get(base, 2)
            self._next[base] = n + 1
            suffix = f"-{n}"
            candidate = base[: _ID_CHARS - len(suffix)].rstrip("-_") + suffix
        self._seen.add(candidate)
        return candidate


@dataclass
class _Parts:
    """What a section's labelled lines say, and its first paragraph."""

    labelled: dict[Label, list[str]] = field(default_factory=lambda: {"fix": [], "signal": [], "symptom": []})
    paragraphs: list[list[str]] = field(default_factory=lambda: [[]])

    def text(self, line: str) -> None:
        self.paragraphs[-1].append(line)

    def end_paragraph(self) -> None:
        if self.paragraphs[-1]:
            self.paragraphs.append([])

    @property
    def summary(self) -> str:
        first = next((p for p in self.paragraphs if p), [])
        return " ".join(_plain(line) for line in first)[:_SUMMARY_CHARS]


def _parts(body: list[tuple[str, bool]]) -> _Parts:
    parts = _Parts()
    under: Label | None = None  # the label whose list items follow
    for line, fenced in body:
        if fenced:
            parts.end_paragraph()
            continue
        if heading := next((k for k, p in _LABEL_HEADING.items() if p.match(line)), None):
            under = heading
            parts.end_paragraph()
        elif _HEADING.match(line):
            under = None
            parts.end_paragraph()
        elif found := _labelled(line):
            kind, text, start = found
            parts.labelled[kind].append(text)
            under = None
            if kind == "fix":  # what comes before it is prose (or "Error: …"); the advice ends the paragraph
                if before := line[:start].strip():
                    if (first := _labelled(before)) and first[0] != "fix":
                        parts.labelled[first[0]].append(first[1])
                        before = first[1]
                    parts.text(before)
                parts.end_paragraph()
            else:
                parts.text(text)
        elif under is not None and (item := _ITEM.match(line)):
            parts.labelled[under].append(item.group(1))
        elif not line.strip():
            parts.end_paragraph()
        else:
            item = _ITEM.match(line)
            parts.text(item.group(1) if item else line.strip())
    return parts


def _labelled(line: str) -> tuple[Label, str, int] | None:
    for kind, pattern in _INLINE.items():
        if m := pattern.search(line):
            return kind, m.group(1), m.start()
    return None


def _document(doc_id: str, title: str, body: list[tuple[str, bool]], path: Path | None) -> Document:
    parts = _parts(body)
    fixes = _distinct(f[:1].upper() + f[1:] for f in (_plain(f).rstrip(".") for f in parts.labelled["fix"]))
    # Advice for a person, as written; never a typed remediation (what a responder may run).
    actions = [
        RunbookAction(
            type="process", title=_cut(fix), description=fix, priority="high" if i == 0 else "medium"
        )
        for i, fix in enumerate(fixes)
    ]
    return Document(
        id=doc_id,
        title=_cut(title),
        kind="incident",
        summary=parts.summary,
        symptoms=_distinct(_cut(_plain(s), _LABEL_CHARS) for s in parts.labelled["symptom"]),
        signals=_distinct(_cut(_plain(s), _LABEL_CHARS) for s in parts.labelled["signal"]),
        actions=actions,
        body="\n".join(line for line, _ in body).strip(),
        path=path,
    )


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("**", "").replace("`", "")).strip()


def _cut(text: str, limit: int = _TITLE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _slug(text: str) -> str:
    """Lowercase ASCII letters and digits joined by ``-``; accents dropped (``Störung`` -> ``storung``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SLUG_RUN.sub("-", ascii_text.lower()).strip("-")
