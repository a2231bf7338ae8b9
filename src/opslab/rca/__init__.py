"""Evidence-first root-cause analysis of agent runs (pure domain: no I/O).

``analyze_run`` collects evidence from a run, classifies it, locates the earliest decisive failure
and writes a report whose hypotheses may only cite evidence in its index.
"""

from typing import Any

from opslab.rca.analyze import INSUFFICIENT_REASON, analyze_run, build_report, locate_root_cause
from opslab.rca.evaluate import EvalResult, Truth, score
from opslab.rca.evidence import collect_evidence, is_generic
from opslab.rca.job import KIND, RCA, RcaPayload, rca_work
from opslab.rca.labels import carried_labels, load_labels, run_key
from opslab.rca.llm_localize import STRATEGIES, LlmLocalizer
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
from opslab.rca.views import RcaRunCreated, RcaRunList, RcaRunView

# Cross-validation and the ablation refit the localiser (scipy): loaded when first used.
_VALIDATION = {"ablation", "cross_validated", "examples_of"}


def __getattr__(name: str) -> Any:
    if name in _VALIDATION:
        from opslab.rca import validate

        return getattr(validate, name)
    raise AttributeError(name)


def localizer_meta() -> dict[str, Any]:
    """The shipped localiser's method version and fitting facts (``localizer.json``)."""
    from opslab.rca.scoring import shipped

    return dict(shipped().meta)


__all__ = [
    "KIND",
    "RCA",
    "RcaPayload",
    "STRATEGIES",
    "LlmLocalizer",
    "INSUFFICIENT_REASON",
    "PRECEDENCE",
    "REPORT_SCHEMA_VERSION",
    "ActionItem",
    "Category",
    "EvalResult",
    "Evidence",
    "Hypothesis",
    "RcaReport",
    "RcaRunCreated",
    "RcaRunList",
    "RcaRunView",
    "RootCause",
    "analyze_run",
    "build_report",
    "collect_evidence",
    "enforce_citations",
    "is_generic",
    "rca_work",
    "load_labels",
    "carried_labels",
    "run_key",
    "Truth",
    "localizer_meta",
    "locate_root_cause",
    "score",
]
