"""The lab: your harness over tasks × variants × replications, isolated per trial, resumable, analysed.

``resolve`` validates an experiment and its paths; ``expand_trials`` plans; ``prepare_run`` and
``execute`` run; ``build_tables`` and ``compare`` analyse.
"""

from typing import TYPE_CHECKING, Any

from opslab.lab.config import SKELETON, ExperimentConfig, Resolved, project_root_of, resolve
from opslab.lab.knobs import apply_overrides
from opslab.lab.plan import Trial, expand_trials
from opslab.lab.runner import LabProgress, execute, find_run, isolation_note, prepare_run, resolved_for_run

if TYPE_CHECKING:
    from opslab.lab.analysis import build_tables, compare, load_outputs

_ANALYSIS = frozenset({"build_tables", "compare", "load_outputs"})


def __getattr__(name: str) -> Any:
    # The analysis needs NumPy and SciPy: imported on first use, so planning and running trials start fast.
    if name in _ANALYSIS:
        from opslab.lab import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'opslab.lab' has no attribute {name!r}")


__all__ = [
    "SKELETON",
    "ExperimentConfig",
    "LabProgress",
    "Resolved",
    "Trial",
    "apply_overrides",
    "build_tables",
    "compare",
    "execute",
    "expand_trials",
    "find_run",
    "isolation_note",
    "load_outputs",
    "prepare_run",
    "project_root_of",
    "resolve",
    "resolved_for_run",
]
