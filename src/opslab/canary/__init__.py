"""The canary agent: A/B (ABAB) experiments on a live service, judged by the seed's rules and statistics.

Other packages use only what is named here: the agent (``run_canary``, ``dry_run``), Execute + Judge for
a target that experiments on itself (``run_experiment``), one window of open-loop load (``measure``), the
renderers, the sweep, the history, and the typed results.
"""

from typing import TYPE_CHECKING

from opslab.lazy import lazy_exports

if TYPE_CHECKING:
    from opslab.canary.agent import MINI, SUMMARY, dry_run, run_canary, run_experiment
    from opslab.canary.balance import IMBALANCE_WARN_PCT, Imbalance, imbalance_of
    from opslab.canary.execute import CanaryProgress, MetricsReader, RunContext, Stop, WindowRunner
    from opslab.canary.guard import (
        GuardedTarget,
        Intent,
        Recovery,
        hold_target,
        lease_name,
        recover_abandoned,
    )
    from opslab.canary.history import (
        SCHEMA_VERSION,
        HistoryIndex,
        HistoryRecord,
        RunRecord,
        append_history,
        read_history,
    )
    from opslab.canary.holder import HolderProcess
    from opslab.canary.job import (
        CANARY,
        KIND,
        CanaryDeps,
        CanaryPayload,
        canary_work,
        history_file,
        reports_dir,
    )
    from opslab.canary.judging import judge_windows
    from opslab.canary.loadgen import LiveWindow, LoadSpec, measure, server_time_ms
    from opslab.canary.model import (
        EXIT_BLOCKED,
        EXIT_EDGE,
        EXIT_FAIL,
        EXIT_INTERRUPTED,
        EXIT_NOT_RESTORED,
        EXIT_PASS,
        CanaryResult,
        Decision,
        DryRun,
        Final,
        Flags,
        Judgement,
        Measurement,
        MetricResult,
        MiniReport,
        Outcome,
        Verdict,
        WindowSummary,
        exit_code_of,
    )
    from opslab.canary.plan import Experiment, Plan, load_plan, parse_plan
    from opslab.canary.prometheus import PrometheusSource, WindowMetrics, WindowSpan
    from opslab.canary.report_parser import parse_mini_report
    from opslab.canary.secrets import RunSecrets, readable, resolve_secrets
    from opslab.canary.space import ParamSpec, Space, load_space
    from opslab.canary.summary import pct, render_mini, render_summary, rollback_command
    from opslab.canary.sweep import PENALTY as SWEEP_PENALTY
    from opslab.canary.sweep import SweepResult, SweepTrial, run_sweep
    from opslab.canary.sweep import objective as sweep_objective
    from opslab.canary.target import HttpTarget, TargetClient
    from opslab.canary.target_plan import Target
    from opslab.canary.views import CanaryRunCreated, CanaryRunIn, CanaryRunView
else:
    __getattr__ = lazy_exports(__name__)

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_EDGE",
    "EXIT_FAIL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_RESTORED",
    "EXIT_PASS",
    "CanaryProgress",
    "Final",
    "LiveWindow",
    "LoadSpec",
    "MetricResult",
    "MetricsReader",
    "RunSecrets",
    "Stop",
    "exit_code_of",
    "pct",
    "PrometheusSource",
    "WindowMetrics",
    "WindowSpan",
    "readable",
    "resolve_secrets",
    "rollback_command",
    "CANARY",
    "KIND",
    "CanaryDeps",
    "CanaryPayload",
    "MINI",
    "SCHEMA_VERSION",
    "SUMMARY",
    "SWEEP_PENALTY",
    "CanaryResult",
    "CanaryRunCreated",
    "CanaryRunIn",
    "CanaryRunView",
    "Decision",
    "DryRun",
    "Experiment",
    "Flags",
    "HistoryIndex",
    "HistoryRecord",
    "GuardedTarget",
    "HolderProcess",
    "IMBALANCE_WARN_PCT",
    "Imbalance",
    "imbalance_of",
    "Intent",
    "Recovery",
    "hold_target",
    "lease_name",
    "recover_abandoned",
    "HttpTarget",
    "Target",
    "Judgement",
    "Measurement",
    "MiniReport",
    "Outcome",
    "ParamSpec",
    "Plan",
    "RunContext",
    "RunRecord",
    "Space",
    "SweepResult",
    "SweepTrial",
    "TargetClient",
    "Verdict",
    "WindowSummary",
    "WindowRunner",
    "append_history",
    "dry_run",
    "history_file",
    "canary_work",
    "judge_windows",
    "load_plan",
    "load_space",
    "measure",
    "parse_mini_report",
    "parse_plan",
    "read_history",
    "render_mini",
    "render_summary",
    "reports_dir",
    "run_canary",
    "server_time_ms",
    "run_experiment",
    "run_sweep",
    "sweep_objective",
]
