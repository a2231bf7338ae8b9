"""How a text becomes BM25 terms, for documents and queries alike: error normalisation, then synonyms.

Error messages name one failure in many wordings — ``OOMKilled``, ``exit code 137``, ``signal: 9, SIGKILL``,
``java.lang.OutOfMemoryError`` — and carry noise that matches the wrong document by chance: versions
(``3.0.0``), timestamps, hashes, ports, pids. So, before tokenizing:

1. **Normalise**: drop ANSI colours, timestamps, UUIDs, digests and long hex ids, versions; split
   ``CamelCase`` and letter-digit runs (``OOMKilled`` -> ``OOM Killed``, ``4GB`` -> ``4 GB``). Numbers
   keep only three digits (exit codes and HTTP statuses: 137, 404, 429); shorter or longer ones are
   counters, ports and durations.
2. **Synonyms**: each known wording of a failure adds one *concept* term (``≈oom``, ``≈image_pull`` …)
   to the terms. A document and a query that name the same failure in different words then share a
   rare term, which BM25 weighs like any other. Concept terms cannot be typed, so they never collide
   with a word.

Both sides go through ``analyze``; a change here changes every ranking (the tests hold them).
"""

from __future__ import annotations

import functools
import re

CONCEPT_PREFIX = "≈"

_WORD = re.compile(r"[a-z0-9]+")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOISE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"  # timestamps
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"  # UUIDs
    r"|\bsha\d{3}:[0-9a-fA-F]{16,}\b|\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b"  # digests, hex
    r"|\bv?\d+(?:\.\d+)+(?:[-+][0-9A-Za-z.]+)?"  # versions: 3.0.0, 1.0-SNAPSHOT, v2.4.1
)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")

# Wordings of one failure, matched in the normalised lowercase text (before stopwords are dropped).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "oom": (
        r"out of memory",
        r"\boom\b",
        r"\b(?:exit|exited|code|status)\b\W{0,3}137\b",
        r"\bsig ?kill\b",
        r"\bsignal\W{0,3}9\b",
        r"killed signal",
        r"heap (?:out of memory|limit|space)",
        r"allocation failed",
        r"gc overhead limit",
        r"memory (?:error|exhausted)",
        r"cannot allocate memory",
        r"\benomem\b",
    ),
    "image_pull": (
        r"pull access denied",
        r"manifest unknown",
        r"manifest for \S+ not found",
        r"\btoomanyrequests\b",
        r"pull rate limit",
        r"err ?image ?pull",
        r"image ?pull ?back ?off",
        r"back-off pulling image",
        r"(?:failed|error)(?: to)? pull(?:ing)?(?: and unpack)? image",
        r"repository does not exist",
        r"failed to resolve (?:source metadata|reference)",
        r"requested access to the resource is denied",
        r"docker login",
    ),
    "dependency_resolution": (
        r"\beresolve\b",
        r"resolution ?impossible",
        r"could not find a version that satisfies",
        r"no matching (?:distribution|version)",
        r"conflicting (?:dependencies|versions|requirements)",
        r"unable to resolve dependency",
        r"could not resolve (?:dependenc|all (?:files|dependencies))",
        r"version solving failed",
        r"failed to select a version",
        r"couldn'?t find any versions",
        r"\bpeer dep",
        r"\block ?file\b|package-lock|are in sync",
        r"\betarget\b",
        r"could not find artifact",
        r"go mod tidy",
    ),
    "test_failure": (
        r"\bassert(?:ion)?(?: ?error| failed)?\b",
        r"\btests? failed\b|\bfailed tests?\b|\bfailing tests?\b|\btest failures?\b",
        r"\b\d+ failed\b|\b\d+ failures?\b|\bfailures?:",
        r"--- fail\b",
        r"\bexpected\b.{0,80}\b(?:received|got|but was)\b|expected to find|\bexpect\(",
        r"\bflaky\b|passed on re-?run|\bintermittent",
    ),
    "timeout": (
        r"\btimed? ?out\b",
        r"deadline exceeded",
        r"maximum (?:execution )?time",
        r"(?:took|ran) longer than",
        r"too long with no output",
    ),
    "rate_limit": (r"too ?many ?requests", r"rate[- ]?limit", r"\b429\b", r"\bthrottl"),
    "target_down": (r"\btarget ?down\b|targets? (?:are|is) down", r"\bup ?== ?0\b", r"connection refused"),
    "http_404": (r"\b404\b",),
}
_CONCEPTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (CONCEPT_PREFIX + name, re.compile("|".join(f"(?:{p})" for p in patterns)))
    for name, patterns in _SYNONYMS.items()
)


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN  # type: ignore[import-untyped]

    return frozenset(str(w) for w in STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lowercase words of ``text`` without English stopwords, in order (repeats kept: BM25 counts them)."""
    stop = _stopwords()
    return [w for w in _WORD.findall(text.lower()) if w not in stop]


def normalize(text: str) -> str:
    """An error message without its noise, camel case and letter-digit runs split, in lowercase."""
    text = _NOISE.sub(" ", _ANSI.sub("", text))
    return _CAMEL.sub(" ", text).lower()


def concepts(normalized: str) -> list[str]:
    """The concept terms of a normalised text, once per matching wording."""
    return [term for term, pattern in _CONCEPTS for _ in pattern.finditer(normalized)]


def analyze(text: str, *, query: bool = False) -> list[str]:
    """BM25 terms: the words of the normalised text (numbers only of three digits), then its concepts —
    each once for a query (a long log must not outvote its own words), once per wording for a document."""
    normal = normalize(text)
    words = [w for w in tokenize(normal) if not w.isdigit() or len(w) == 3]
    found = concepts(normal)
    return words + (list(dict.fromkeys(found)) if query else found)
