from __future__ import annotations

import math

import pytest

from opslab.judge import clustered_mean_interval, mcnemar, paired_difference, pass_at_k, sign_test


def test_pass_at_k_matches_the_closed_form() -> None:
    assert pass_at_k(10, 0, 1) == 0 and pass_at_k(10, 10, 3) == 1
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))
    assert math.isnan(pass_at_k(3, 1, 4))


def test_mcnemar_uses_only_discordant_tasks() -> None:
    base = {f"t{i}": True for i in range(20)}
    treat = {**base, **{f"t{i}": False for i in range(8)}}
    res = mcnemar(base, treat)
    assert (res.baseline_only, res.treatment_only) == (8, 0)
    assert res.p_value == pytest.approx(2 * 0.5**8)
    assert mcnemar(base, base).p_value == 1.0


def test_paired_difference_and_clustered_interval() -> None:
    base = {f"t{i}": float(i) for i in range(30)}
    treat = {k: v + 2.0 for k, v in base.items()}
    d = paired_difference(base, treat, resamples=500)
    assert d.n_tasks == 30 and d.mean_difference == pytest.approx(2.0)
    assert d.ci.low == pytest.approx(2.0) and d.ci.high == pytest.approx(2.0)
    iv = clustered_mean_interval({"a": [1.0, 1.0, 1.0], "b": [3.0, 3.0, 3.0]})
    assert iv.low < 2.0 < iv.high and iv.high - iv.low > 10  # two clusters: wide, not 6 fake samples


def test_the_sign_test_sees_a_failing_replication_a_majority_vote_would_hide() -> None:
    base = {f"t{i}": 1.0 for i in range(6)}
    treat = {**base, "t0": 2 / 3, "t1": 2 / 3, "t2": 2 / 3, "t3": 2 / 3}  # one of three fails on 4 tasks
    res = sign_test(base, treat)
    assert (res.baseline_only, res.treatment_only) == (4, 0)
    assert res.p_value == pytest.approx(0.125) and "sign test" in res.test
    bools = {"a": True, "b": False}
    assert (
        sign_test({k: float(v) for k, v in bools.items()}, {"a": 0.0, "b": 0.0}).p_value
        == mcnemar(bools, {"a": False, "b": False}).p_value
    )
