"""The seed's mini report, in every shape a target writes it."""

from __future__ import annotations

import pytest

from opslab.canary import parse_mini_report
from opslab.errors import InvalidInput

SEED_STYLE = """RESULTS
- ΔP95: -12.5%
- ΔQPS: -5.2%
- Error Rate: 0.50%
- AB Imbalance: 4.5%
"""
OURS = "COMBO MINI REPORT\nΔP95: +1.20%\nΔQPS: −0.40%\nErr%: 0.00\nP95_A_ms: 12.00\nVerdict: FAIL\n"


def test_the_seed_summary_style() -> None:
    r = parse_mini_report(SEED_STYLE)
    assert (r.delta_p95_pct, r.delta_qps_pct, r.error_rate_pct, r.ab_imbalance_pct) == (-12.5, -5.2, 0.5, 4.5)
    assert r.measured


def test_our_own_mini_report_with_a_unicode_minus() -> None:
    r = parse_mini_report(OURS)
    assert (r.delta_p95_pct, r.delta_qps_pct, r.error_rate_pct) == (1.2, -0.4, 0.0)
    assert r.other["Verdict"] == "FAIL" and r.ab_imbalance_pct is None


def test_json_reports_and_not_measured() -> None:
    r = parse_mini_report('{"delta_p95_pct": -20.1, "delta_qps_pct": "0.3%", "error_rate_pct": 0}')
    assert (r.delta_p95_pct, r.delta_qps_pct, r.error_rate_pct) == (-20.1, 0.3, 0.0)
    assert not parse_mini_report("ΔP95: n/a\nΔQPS: n/a\nErr%: 0.00\n").measured


@pytest.mark.parametrize(
    "text",
    [
        "ΔP95: -1%\nΔQPS: 0%\nErr%: 0\nSamples: 1200/1080\n",
        "ΔP95: -1%\nΔQPS: 0%\nErr%: 0\nSamples: A=1200, B=1080\n",
        "- ΔP95: -1%\n- ΔQPS: 0%\n- Err%: 0\n- Samples A: 1200\n- Samples B: 1080\n",
        '{"delta_p95_pct": -1, "delta_qps_pct": 0, "error_rate_pct": 0, "samples": [1200, 1080]}',
        '{"delta_p95_pct": -1, "delta_qps_pct": 0, "error_rate_pct": 0, "samples": {"A": 1200, "B": 1080}}',
        '{"delta_p95_pct": -1, "delta_qps_pct": 0, "error_rate_pct": 0, "samples_a": 1200,"samples_b": 1080}',
    ],
)
def test_sample_counts_give_the_imbalance_whatever_their_shape(text: str) -> None:
    r = parse_mini_report(text + ("" if text.startswith("{") else "AB Imbalance: 0.1%\n"))
    assert r.samples == (1200, 1080) and r.ab_imbalance_pct is not None
    # Measured from the counts, not the line: B's shortfall from A, a share of the larger arm.
    assert abs(r.ab_imbalance_pct - 100 * 120 / 1200) < 1e-9
    assert r.srm_p is not None and r.srm_p < 0.05


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ΔP95: -3%\nErr%: 0.1\n", "ΔQPS"),
        ("nothing useful here", "ΔP95, ΔQPS, Err%"),
        ("ΔP95: fast\nΔQPS: 1%\nErr%: 0\n", "fast"),
        ("{not json", "not valid JSON"),
    ],
)
def test_incomplete_or_garbled_reports_are_refused(text: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_mini_report(text)
    assert words in info.value.message
