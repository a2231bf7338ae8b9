"""Statistics and decision rules shared by lab, canary and autoops. Pure functions, no I/O."""

from opslab.judge.compare import (
    PairedBinary,
    PairedDifference,
    clustered_mean_interval,
    mcnemar,
    paired_difference,
    pass_at_k,
)
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
    "PairedBinary",
    "PairedDifference",
    "clustered_mean_interval",
    "mcnemar",
    "paired_difference",
    "pass_at_k",
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
