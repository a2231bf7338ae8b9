"""Holding a model's fix to the runbook it cites: every step it advises must come from that runbook's
actions, and destructive advice is refused whatever it cites.

A step *comes from* an action when most of its content words (after the knowledge index's own
normalisation: ``4GB`` is ``4 gb``, ``OOMKilled`` is ``oom killed``) appear in that action's title or
description: a model may rephrase "Increase CI runner memory limit to 2–4GB or enable build cache" as
"give the runner 4 GB and turn the build cache on", not add "and upgrade Node" to it. Steps that do not
are kept, flagged "not from the runbook", and ranked below the runbook's own.

Destructive advice — force-pushing, deleting history, a repository, data or a cluster, wiping disks,
piping a download into a shell, disabling protections — is refused: the whole answer is dropped (a model
that proposes it is not trusted for the rest) and the runbook's words stand, with what was refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from opslab.knowledge import RunbookAction, normalize, tokenize

SUPPORT = 0.5  # share of a step's content words its runbook action must hold
NOT_FROM_RUNBOOK = "not from the runbook"

# Words that frame advice rather than name an action ("you should try to…", "the build's job").
_FILLER_WORDS = (
    "you your we our should try consider please also can could would may might must need needs make sure "
    "ensure recommend recommended suggest first so do does its s t build builds ci job pipeline step steps "
    "fix fixes error errors failure failed failing issue problem here"
)
_FILLER = frozenset(_FILLER_WORDS.split())

_DESTRUCTIVE: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.I))
    for reason, pattern in (
        ("force-push", r"\bforce[- ]?push|\bpush\b[^.\n]{0,40}(?:--force\b|\s-f\b|\+\w)"),
        ("deletes the repository or its history", r"\b(?:delete|remove|rm|wipe|erase)\b[^.\n]{0,40}\.git\b"),
        (
            "deletes the repository or its history",
            r"\b(?:delete|remove|drop)\b[^.\n]{0,20}\b(?:repo|repository|main branch|master branch)\b",
        ),
        ("rewrites history", r"\bgit\s+(?:reset\s+--hard\s+\S*origin|filter-branch|push\s+--mirror)"),
        (
            "recursive delete",
            r"\brm\s+-(?:[a-z]*r[a-z]*f|[a-z]*f[a-z]*r)[a-z]*\s+(?:/|~|\*|\$home|\.\s*$|\.\.)",
        ),
        ("drops data", r"\b(?:drop|truncate)\s+(?:table|database|schema|collection)\b|\bflushall\b"),
        (
            "deletes infrastructure",
            r"\bterraform\s+destroy\b|\bkubectl\s+delete\s+(?:ns|namespace|pv|pvc|all)\b",
        ),
        (
            "wipes volumes or disks",
            r"\bdocker\s+(?:system|volume)\s+prune\b[^.\n]*--volumes|\bmkfs\b|\bdd\s+if=",
        ),
        ("runs a downloaded script", r"\b(?:curl|wget)\b[^|\n]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b"),
        (
            "disables protections",
            r"\bchmod\s+(?:-r\s+)?777\b|--no-verify\b|\bdisable\b[^.\n]{0,30}\bprotection",
        ),
        ("disables protections", r"\b(?:skip|disable)\b[^.\n]{0,20}\b(?:ssl|tls|certificate) verif"),
    )
)


@dataclass(frozen=True)
class Grounding:
    """Where a step comes from: the runbook action holding most of its words (``None`` below SUPPORT)."""

    action: RunbookAction | None
    support: float


def destructive(text: str) -> str | None:
    """Why ``text`` is destructive advice, or ``None``."""
    return next((reason for reason, pattern in _DESTRUCTIVE if pattern.search(text)), None)


def content_words(text: str) -> set[str]:
    # The knowledge index's normalisation: "4GB" and "4 GB", "OOMKilled" and "OOM killed" are one phrase.
    return {w for w in tokenize(normalize(text)) if w not in _FILLER}


def ground(step: str, actions: Sequence[RunbookAction]) -> Grounding:
    """The runbook action ``step`` comes from, if any: the one holding the largest share of its words."""
    words = content_words(step)
    if not words:
        return Grounding(None, 0.0)
    best: RunbookAction | None = None
    best_share = 0.0
    for action in actions:
        share = len(words & content_words(f"{action.title} {action.description}")) / len(words)
        if share > best_share:
            best, best_share = action, share
    return Grounding(best if best_share >= SUPPORT else None, round(best_share, 3))


def sentences(text: str) -> list[str]:
    """A model's suggestion cut into the sentences it is judged by."""
    return [s.strip() for s in re.split(r"(?<=[.!?;])\s+|\n+", text) if s.strip()]
