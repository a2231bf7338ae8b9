"""The canary agent: A/B (ABAB) experiments on a live service, judged by the seed's rules and statistics."""

from opslab.canary.agent import MINI, SUMMARY, run_canary
from opslab.canary.judging import judge_windows
from opslab.canary.loadgen import Window, run_window
from opslab.canary.plan import Plan, load_plan, parse_plan
from opslab.canary.target import HttpTarget, TargetClient

__all__ = [
    "MINI",
    "SUMMARY",
    "HttpTarget",
    "Plan",
    "TargetClient",
    "Window",
    "judge_windows",
    "load_plan",
    "parse_plan",
    "run_canary",
    "run_window",
]
