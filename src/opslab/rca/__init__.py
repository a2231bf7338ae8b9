"""Evidence-first root-cause analysis of agent runs (pure domain: no I/O).

``analyze_run`` collects evidence from a run, classifies it, locates the earliest decisive failure
and writes a report whose hypotheses may only cite evidence in its index.
"""

from typing import TYPE_CHECKING, Any

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
from opslab.rca.scoring import Localizer, load_localizer
from opslab.rca.views import rca_run_view
from opslab.wire.rca import RcaRunCreated, RcaRunList, RcaRunView

if TYPE_CHECKING:
    from opslab.rca.fitting import Labelled, read_labelled
    from opslab.rca.fitting import evaluate as evaluate_labelled
    from opslab.rca.fitting import train as train_localizer
    from opslab.rca.validate import ablation, cross_validated, examples_of

# Fitting, cross-validation and the ablation refit the localiser (scipy): loaded when first used.
_LAZY = {
    "ablation": "validate",
    "cross_validated": "validate",
    "examples_of": "validate",
    "Labelled": "fitting",
    "read_labelled": "fitting",
    "train_localizer": "fitting",
    "evaluate_labelled": "fitting",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"opslab.rca.{_LAZY[name]}")
        return getattr(module, {"train_localizer": "train", "evaluate_labelled": "evaluate"}.get(name, name))
    raise AttributeError(name)


def localizer_meta() -> dict[str, Any]:
    """The shipped localiser's method version and fitting facts (``localizer.json``)."""
    from opslab.rca.scoring import shipped

    return dict(shipped().meta)


__all__ = [
    "Labelled",
    "ablation",
    "cross_validated",
    "evaluate_labelled",
    "examples_of",
    "read_labelled",
    "train_localizer",
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
    "rca_run_view",
    "load_labels",
    "carried_labels",
    "run_key",
    "Truth",
    "localizer_meta",
    "Localizer",
    "load_localizer",
    "locate_root_cause",
    "score",
]
