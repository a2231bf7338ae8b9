"""Statistics and decision rules shared by lab, canary and autoops. Pure functions, no I/O."""

from opslab.judge.stats import (
    Interval,
    MannWhitney,
    ProportionTest,
    SampleRatio,
    bootstrap_ci,
    bootstrap_relative_delta_ci,
    mann_whitney,
    p95,
    percentile,
    relative_delta,
    sample_ratio_mismatch,
    t_interval,
    two_proportion_test,
    wilson_interval,
)

__all__ = [
    "Interval",
    "MannWhitney",
    "ProportionTest",
    "SampleRatio",
    "bootstrap_ci",
    "bootstrap_relative_delta_ci",
    "mann_whitney",
    "p95",
    "percentile",
    "relative_delta",
    "sample_ratio_mismatch",
    "t_interval",
    "two_proportion_test",
    "wilson_interval",
]
