"""Statistics and decision rules shared by lab, canary and autoops. Pure functions, no I/O."""

from opslab.judge.stats import (
    Interval,
    MannWhitney,
    SampleRatio,
    bootstrap_ci,
    bootstrap_relative_delta_ci,
    mann_whitney,
    p95,
    percentile,
    relative_delta,
    sample_ratio_mismatch,
    t_interval,
    wilson_interval,
)

__all__ = [
    "Interval",
    "MannWhitney",
    "SampleRatio",
    "bootstrap_ci",
    "bootstrap_relative_delta_ci",
    "mann_whitney",
    "p95",
    "percentile",
    "relative_delta",
    "sample_ratio_mismatch",
    "t_interval",
    "wilson_interval",
]
