"""Evidence-first root-cause analysis of agent runs (pure domain: no I/O).

``analyze_run`` collects evidence from a run, classifies it, locates the earliest decisive failure
and writes a report whose hypotheses may only cite evidence in its index.
"""

from opslab.rca.analyze import INSUFFICIENT_REASON, analyze_run, build_report, locate_root_cause
from opslab.rca.evidence import VersionStat, collect_evidence, is_generic
from opslab.rca.model import (
    PRECEDENCE,
    REPORT_SCHEMA_VERSION,
    ActionItem,
    Category,
    Evidence,
    Hypothesis,
    RcaReport,
    RootCause,
    enforce_citations,
)

__all__ = [
    "INSUFFICIENT_REASON",
    "PRECEDENCE",
    "REPORT_SCHEMA_VERSION",
    "ActionItem",
    "Category",
    "Evidence",
    "Hypothesis",
    "RcaReport",
    "RootCause",
    "VersionStat",
    "analyze_run",
    "build_report",
    "collect_evidence",
    "enforce_citations",
    "is_generic",
    "locate_root_cause",
]
