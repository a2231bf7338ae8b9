"""The lab: your harness over tasks × variants × replications, isolated per trial, resumable, analysed.

``run_experiment`` is the use case (resolve, policy, run or resume, report, analyse -> ``LabRun``). Its
parts: ``resolve`` validates an experiment and its paths; ``expand_trials`` plans; ``prepare_run`` and
``execute`` run; ``analyse_run`` (``build_tables``, ``compare``) analyses; ``trial_to_agent_run`` turns
a finished trial into an agent run for a ``TrialReporter``. The files are typed records (``records``).
The SDK (``sdk``): ``ExperimentBuilder`` writes an experiment in code, ``LabClient`` drives the CLI.
"""

from typing import TYPE_CHECKING

from opslab.lazy import lazy_exports

# Every name is imported on first use (``opslab.lazy``): ``opslab lab run`` loads what running trials
# needs, and neither the analysis (NumPy, SciPy), nor the SDK, the dashboard's readers or the service's
# job machinery until they are used.
if TYPE_CHECKING:
    from opslab.lab.agent_run import agent_run_id, trial_to_agent_run
    from opslab.lab.analysis import (
        build_tables,
        compare,
        format_interval,
        format_rate,
        format_value,
        load_outputs,
    )
    from opslab.lab.archive import ArchivedRun, archive_run, restore_run
    from opslab.lab.browse import (
        RunList,
        RunListing,
        RunView,
        TaskRow,
        TrialView,
        list_runs,
        read_run,
        read_trial,
        root_key,
    )
    from opslab.lab.clean import clean_project
    from opslab.lab.compare_runs import RunsComparison, compare_run_dirs
    from opslab.lab.config import SKELETON, ExperimentConfig, Resolved, project_root_of, read_yaml, resolve
    from opslab.lab.control import ControlFile, RunInterrupted, held_slots, interrupt_on_signals, read_control
    from opslab.lab.describe import describe as describe_experiment
    from opslab.lab.finish import RunAnalysis, analyse_run
    from opslab.lab.fork import Fork, fork_trial, parse_sets
    from opslab.lab.hooks import HarnessManifest, validate_hooks
    from opslab.lab.isolation.checks import probe_ahead, sandbox_problem
    from opslab.lab.job import KIND, LabDeps, lab_work, new_lab_job
    from opslab.lab.knobs import apply_overrides, check_pointers, load_overrides
    from opslab.lab.knobs import init_files as init_knob_files
    from opslab.lab.launcher import write_launcher
    from opslab.lab.pause import ControlResult, pause_run, resume_run, stop_run
    from opslab.lab.plan import Trial, expand_trials
    from opslab.lab.pool import TrialDone
    from opslab.lab.publish import Bundle, publish_run
    from opslab.lab.query import QueryResult, query_run
    from opslab.lab.queued_pool import TrialQueue
    from opslab.lab.records import (
        OUTCOMES,
        Attestation,
        Manifest,
        Outcome,
        RunStatus,
        TrialInput,
        TrialRecord,
    )
    from opslab.lab.replay import Replay, replay_trial
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
    from opslab.lab.sdk import ExperimentBuilder, LabClient, LabRunnerError
    from opslab.lab.session import LabRun, RunMode, VariantResult, resolve_with_overrides, run_experiment
    from opslab.lab.validate import SCHEMAS, validate_schema
    from opslab.lab.views import LAB, Executor, LabPayload, LabRunCreated, LabRunIn, LabRunView
else:
    __getattr__ = lazy_exports(__name__)

__all__ = [
    "probe_ahead",
    "sandbox_problem",
    "RunList",
    "RunListing",
    "RunView",
    "TaskRow",
    "TrialView",
    "list_runs",
    "read_run",
    "read_trial",
    "root_key",
    "ExperimentBuilder",
    "LabClient",
    "LabRunnerError",
    "SCHEMAS",
    "Bundle",
    "ControlFile",
    "ControlResult",
    "Fork",
    "HarnessManifest",
    "Replay",
    "RunInterrupted",
    "fork_trial",
    "held_slots",
    "interrupt_on_signals",
    "parse_sets",
    "pause_run",
    "publish_run",
    "read_control",
    "replay_trial",
    "resume_run",
    "stop_run",
    "validate_hooks",
    "validate_schema",
    "OUTCOMES",
    "SKELETON",
    "Attestation",
    "ArchivedRun",
    "archive_run",
    "restore_run",
    "BatchTrialReporter",
    "ExperimentConfig",
    "IngestReporter",
    "LabProgress",
    "LabProgressFn",
    "LabRun",
    "Manifest",
    "Outcome",
    "QueryResult",
    "ReporterSource",
    "Resolved",
    "RunIngest",
    "RunsComparison",
    "RunAnalysis",
    "RunMode",
    "RunStatus",
    "Trial",
    "TrialDone",
    "TrialInput",
    "TrialRecord",
    "TrialReporter",
    "VariantResult",
    "KIND",
    "Executor",
    "LabRunCreated",
    "LabRunIn",
    "LabRunView",
    "TrialQueue",
    "lab_work",
    "LabDeps",
    "LAB",
    "LabPayload",
    "new_lab_job",
    "agent_run_id",
    "analyse_run",
    "apply_overrides",
    "build_tables",
    "check_pointers",
    "clean_project",
    "compare",
    "compare_run_dirs",
    "describe_experiment",
    "execute",
    "expand_trials",
    "find_run",
    "format_interval",
    "format_rate",
    "format_value",
    "init_knob_files",
    "isolation_note",
    "load_outputs",
    "load_overrides",
    "write_launcher",
    "prepare_run",
    "query_run",
    "project_root_of",
    "read_yaml",
    "resolve",
    "resolve_with_overrides",
    "resolved_for_run",
    "run_experiment",
    "trial_to_agent_run",
]
