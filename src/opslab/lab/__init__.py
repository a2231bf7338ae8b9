"""The lab: your harness over tasks × variants × replications, isolated per trial, resumable, analysed.

``run_experiment`` is the use case (resolve, policy, run or resume, report, analyse -> ``LabRun``). Its
parts: ``resolve`` validates an experiment and its paths; ``expand_trials`` plans; ``prepare_run`` and
``execute`` run; ``analyse_run`` (``build_tables``, ``compare``) analyses; ``trial_to_agent_run`` turns
a finished trial into an agent run for a ``TrialReporter``. The files are typed records (``records``).
"""

from typing import TYPE_CHECKING, Any

from opslab.lab.config import SKELETON, ExperimentConfig, Resolved, project_root_of, read_yaml, resolve
from opslab.lab.describe import describe as describe_experiment
from opslab.lab.knobs import apply_overrides, check_pointers, load_overrides
from opslab.lab.knobs import init_files as init_knob_files
from opslab.lab.plan import Trial, expand_trials
from opslab.lab.pool import TrialDone
from opslab.lab.records import (
    OUTCOMES,
    Attestation,
    Manifest,
    Outcome,
    RunStatus,
    TrialInput,
    TrialRecord,
)
from opslab.lab.report import BatchTrialReporter, IngestReporter, ReporterSource, RunIngest, TrialReporter
from opslab.lab.runner import (
    LabProgress,
    LabProgressFn,
    execute,
    find_run,
    isolation_note,
    prepare_run,
    resolved_for_run,
)
from opslab.lab.session import LabRun, RunMode, VariantResult, resolve_with_overrides, run_experiment

if TYPE_CHECKING:
    from opslab.lab.agent_run import agent_run_id, trial_to_agent_run
    from opslab.lab.analysis import build_tables, compare, load_outputs
    from opslab.lab.finish import RunAnalysis, analyse_run

# Imported on first use: the analysis needs NumPy and SciPy, the agent-run mapping the telemetry
# package; planning and running trials start faster without either.
_LAZY = {
    "build_tables": "opslab.lab.analysis",
    "compare": "opslab.lab.analysis",
    "load_outputs": "opslab.lab.analysis",
    "RunAnalysis": "opslab.lab.finish",
    "analyse_run": "opslab.lab.finish",
    "agent_run_id": "opslab.lab.agent_run",
    "trial_to_agent_run": "opslab.lab.agent_run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'opslab.lab' has no attribute {name!r}")


__all__ = [
    "OUTCOMES",
    "SKELETON",
    "Attestation",
    "BatchTrialReporter",
    "ExperimentConfig",
    "IngestReporter",
    "LabProgress",
    "LabProgressFn",
    "LabRun",
    "Manifest",
    "Outcome",
    "ReporterSource",
    "Resolved",
    "RunIngest",
    "RunAnalysis",
    "RunMode",
    "RunStatus",
    "Trial",
    "TrialDone",
    "TrialInput",
    "TrialRecord",
    "TrialReporter",
    "VariantResult",
    "agent_run_id",
    "analyse_run",
    "apply_overrides",
    "build_tables",
    "check_pointers",
    "compare",
    "describe_experiment",
    "execute",
    "expand_trials",
    "find_run",
    "init_knob_files",
    "isolation_note",
    "load_outputs",
    "load_overrides",
    "prepare_run",
    "project_root_of",
    "read_yaml",
    "resolve",
    "resolve_with_overrides",
    "resolved_for_run",
    "run_experiment",
    "trial_to_agent_run",
]
