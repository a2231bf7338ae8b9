"""The lab's Python SDK: ``ExperimentBuilder`` writes an experiment in code, ``LabClient`` runs the
``opslab lab`` commands (``--json``) and returns typed results, ``LabRunnerError`` is a command that
failed. The TypeScript SDK (``sdk/ts``) is the same API in camelCase.

The results import the analysis models (NumPy): each name loads on first use, so a script that only
builds an experiment stays light.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opslab.lab.sdk.builder import ExperimentBuilder
    from opslab.lab.sdk.client import LabClient, find_runner
    from opslab.lab.sdk.errors import LabRunnerError
    from opslab.lab.sdk.results import (
        BundleInfo,
        DescribeResult,
        ExperimentSummary,
        ForkResult,
        HooksValidation,
        KnobsValidation,
        PauseResult,
        PlannedTrial,
        PublishResult,
        ReplayResult,
        ResumeResult,
        RunInfo,
        RunResult,
        SchemaValidation,
        read_comparison,
        read_trials,
    )

_LAZY = {
    "ExperimentBuilder": "opslab.lab.sdk.builder",
    "LabClient": "opslab.lab.sdk.client",
    "find_runner": "opslab.lab.sdk.client",
    "LabRunnerError": "opslab.lab.sdk.errors",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY or name in __all__:
        return getattr(importlib.import_module(_LAZY.get(name, "opslab.lab.sdk.results")), name)
    raise AttributeError(f"module 'opslab.lab.sdk' has no attribute {name!r}")


__all__ = [
    "BundleInfo",
    "DescribeResult",
    "ExperimentBuilder",
    "ExperimentSummary",
    "ForkResult",
    "HooksValidation",
    "KnobsValidation",
    "LabClient",
    "LabRunnerError",
    "PauseResult",
    "PlannedTrial",
    "PublishResult",
    "ReplayResult",
    "ResumeResult",
    "RunInfo",
    "RunResult",
    "SchemaValidation",
    "find_runner",
    "read_comparison",
    "read_trials",
]
