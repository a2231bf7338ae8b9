"""The RCA report's rules: which category wins when evidence matches several, and the citation rule
(hypotheses may only cite evidence in the index). The report's shape is the wire's (``opslab.wire.rca``)."""

from __future__ import annotations

from opslab.rca.taxonomy import shipped
from opslab.wire.rca import (
    NO_FAILURE,
    REPORT_SCHEMA_VERSION,
    ActionItem,
    Alternative,
    Category,
    ChainLink,
    Confidence,
    Evidence,
    EvidenceKind,
    HandledIssue,
    Hypothesis,
    RcaReport,
    RootCause,
    RunbookRef,
)

__all__ = [
    "ActionItem",
    "Alternative",
    "Category",
    "ChainLink",
    "Confidence",
    "Evidence",
    "EvidenceKind",
    "HandledIssue",
    "Hypothesis",
    "NO_FAILURE",
    "PRECEDENCE",
    "REPORT_SCHEMA_VERSION",
    "RcaReport",
    "RootCause",
    "RunbookRef",
    "enforce_citations",
]

# When one piece of evidence matches several rules, the earlier category wins (docs/rca.md says why): the
# order of opslab/rca/categories.yaml.
PRECEDENCE: tuple[Category, ...] = shipped().precedence


def enforce_citations(hypotheses: list[Hypothesis], index: list[Evidence]) -> tuple[list[Hypothesis], int]:
    """Keep only hypotheses citing at least one evidence id, every one of which is in the index."""
    known = {e.evidence_id for e in index}
    kept = [h for h in hypotheses if h.evidence_ids and all(i in known for i in h.evidence_ids)]
    return kept, len(hypotheses) - len(kept)
