"""The window-clustered bootstrap: requests of one window share its conditions, so an interval of ΔP95 must
resample windows (and blocks within them), not requests one by one."""

from __future__ import annotations

import math

import numpy as np

from opslab.judge import blocks_of, bootstrap_relative_delta_ci, p95, window_bootstrap_relative_delta_ci


def window(rng: np.random.Generator, median: float, n: int = 1000) -> list[float]:
    return list(rng.lognormal(math.log(median), 0.1, n))


def test_one_disturbed_window_widens_the_interval_instead_of_inventing_a_difference() -> None:
    # Identical arms; one of A's windows ran while the machine was busy (every request 6 % slower).
    rng = np.random.default_rng(3)
    a = [window(rng, 200.0), window(rng, 212.0)]
    b = [window(rng, 200.0), window(rng, 200.0)]
    by_request = bootstrap_relative_delta_ci([x for w in a for x in w], [x for w in b for x in w], p95)
    assert by_request.high < 0  # requests taken as independent: a "difference" that is not there
    by_window = window_bootstrap_relative_delta_ci(a, b, p95)
    assert by_window.low <= 0 <= by_window.high
    assert by_window.high - by_window.low > 2 * (by_request.high - by_request.low)


def test_a_real_effect_is_still_seen_through_windows() -> None:
    rng = np.random.default_rng(5)
    a = [window(rng, 200.0), window(rng, 203.0)]
    b = [window(rng, 160.0), window(rng, 162.0)]  # 20 % faster, with the same window-to-window wobble
    ci = window_bootstrap_relative_delta_ci(a, b, p95)
    assert ci.high < -10 and ci.low > -30


def test_one_window_per_arm_is_a_block_bootstrap_and_empty_arms_give_no_interval() -> None:
    rng = np.random.default_rng(9)
    same = window_bootstrap_relative_delta_ci([window(rng, 100.0)], [window(rng, 100.0)], p95, seed=1)
    assert same.low < 0 < same.high
    assert math.isnan(window_bootstrap_relative_delta_ci([[]], [window(rng, 100.0)], p95).low)
    assert [len(b) for b in blocks_of([1.0] * 25, 10)] == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    assert [len(b) for b in blocks_of([1.0, 2.0], 10)] == [1, 1] and blocks_of([]) == []
