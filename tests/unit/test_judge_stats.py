from __future__ import annotations

import math

import numpy as np
import pytest

from opslab.judge import (
    bootstrap_relative_delta_ci,
    mann_whitney,
    p95,
    percentile,
    relative_delta,
    sample_ratio_mismatch,
    t_interval,
    wilson_interval,
)


def test_wilson_matches_reference_values() -> None:
    # Reference: 8/10 at 95% -> (0.4902, 0.9433) (Wilson 1927; e.g. statsmodels proportion_confint).
    ci = wilson_interval(8, 10)
    assert ci.low == pytest.approx(0.4902, abs=1e-4) and ci.high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10).low == 0.0 and wilson_interval(10, 10).high == pytest.approx(1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_t_interval_and_degenerate_cases() -> None:
    ci = t_interval([1.0, 2.0, 3.0])
    assert ci.low == pytest.approx(2 - 4.302653 * 1 / math.sqrt(3), abs=1e-5)
    assert t_interval([5.0]).low == t_interval([5.0]).high == 5.0
    assert math.isnan(t_interval([]).low)


def test_percentile_and_relative_delta() -> None:
    assert percentile(list(range(101)), 95) == 95
    assert math.isnan(percentile([], 50))
    assert relative_delta(100, 80) == -20
    assert math.isnan(relative_delta(0, 5))


def test_bootstrap_delta_of_p95_brackets_the_true_effect() -> None:
    rng = np.random.default_rng(3)
    base = rng.lognormal(4.0, 0.3, 3000)
    cand = base * 0.8
    ci = bootstrap_relative_delta_ci(base, cand, p95, resamples=400, seed=1)
    assert ci.contains(-20.0) and ci.excludes_zero()
    same = bootstrap_relative_delta_ci(base, rng.permutation(base), p95, resamples=400, seed=1)
    assert not same.excludes_zero()


def test_mann_whitney_detects_a_shift_and_estimates_it() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(100, 10, 400)
    res = mann_whitney(a, a - 15)
    assert res.p_value < 1e-10 and res.hodges_lehmann == pytest.approx(-15, abs=0.5)
    assert mann_whitney(a, rng.permutation(a)).p_value > 0.5


def test_sample_ratio_mismatch() -> None:
    fine = sample_ratio_mismatch([1010, 990])
    assert not fine.mismatch() and fine.imbalance_pct == pytest.approx(1.0)
    bad = sample_ratio_mismatch([1200, 800])
    assert bad.mismatch() and bad.imbalance_pct == pytest.approx(20.0)
    assert sample_ratio_mismatch([0, 0]).p_value == 1.0
