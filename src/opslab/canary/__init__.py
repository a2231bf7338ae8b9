"""The canary agent: A/B (ABAB) experiments on a live service, judged by the seed's rules and statistics.

Other packages use only what is named here: the agent (``run_canary``, ``dry_run``), Execute + Judge for
a target that experiments on itself (``run_experiment``), one window of open-loop load (``measure``), the
renderers, the sweep, the history, and the typed results.
"""

from opslab.canary.agent import MINI, SUMMARY, dry_run, run_canary, run_experiment
from opslab.canary.execute import CanaryProgress, RunContext, WindowRunner
from opslab.canary.history import SCHEMA_VERSION, HistoryRecord, RunRecord, append_history, read_history
from opslab.canary.job import KIND, history_file, job_kind, reports_dir
from opslab.canary.judging import judge_windows
from opslab.canary.loadgen import measure
from opslab.canary.model import (
    CanaryResult,
    Decision,
    DryRun,
    Flags,
    Judgement,
    Measurement,
    MiniReport,
    Outcome,
    Verdict,
)
from opslab.canary.plan import Experiment, Plan, load_plan, parse_plan
from opslab.canary.report_parser import parse_mini_report
from opslab.canary.space import ParamSpec, Space, load_space
from opslab.canary.summary import render_mini, render_summary
from opslab.canary.sweep import PENALTY as SWEEP_PENALTY
from opslab.canary.sweep import SweepResult, SweepTrial, run_sweep
from opslab.canary.sweep import objective as sweep_objective
from opslab.canary.target import HttpTarget, TargetClient
from opslab.canary.views import CanaryRunCreated, CanaryRunIn, CanaryRunView

__all__ = [
    "CanaryProgress",
    "KIND",
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
    "HistoryRecord",
    "HttpTarget",
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
    "WindowRunner",
    "append_history",
    "dry_run",
    "history_file",
    "job_kind",
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
    "run_experiment",
    "run_sweep",
    "sweep_objective",
]
