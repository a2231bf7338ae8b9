"""Judge: the seed's table decides from ΔP95 and the error rate; the statistics (bootstrap CI of ΔP95,
sample-ratio mismatch, Mann-Whitney with Hodges-Lehmann, minimum samples) can only make it more careful.

The ΔP95 interval resamples windows, then blocks of requests within them (``window_bootstrap_relative_
delta_ci``): a window's requests share its conditions, so resampling them one by one made two identical
arms look different. The AB imbalance is that of the samples each arm's p95 is made of (its successful
requests): the load sends both arms the same schedule, so what differs is what each arm lost to errors,
timeouts or a window cut short. It is the smaller arm's shortfall from the larger (``balance``).
The reason's words follow the direction of the change (``direction``): a regression is called one."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from opslab.canary.balance import imbalance_of
from opslab.canary.direction import decide_p95, judge_p95
from opslab.canary.model import Judgement, Measurement
from opslab.canary.plan import Plan
from opslab.canary.prometheus import WindowMetrics, aggregate_arm
from opslab.judge import (
    Verdict,
    bootstrap_relative_delta_ci,
    mann_whitney,
    p95,
    percentile,
    relative_delta,
    sample_ratio_mismatch,
    wilson_interval,
    window_bootstrap_relative_delta_ci,
)


def _mean(values: NDArray[np.float64]) -> float:
    return float(values.mean())


def judge_windows(plan: Plan, a: list[Measurement], b: list[Measurement]) -> Judgement:
    """Pool each arm's windows; ΔP95 is B's p95 against A's, the error rate is B's."""
    la = [x for w in a for x in w.latencies_ms]
    lb = [x for w in b for x in w.latencies_ms]
    sent_a, sent_b = sum(w.sent for w in a), sum(w.sent for w in b)
    errors_b = sum(w.errors for w in b)
    qps_a = sent_a / max(1e-9, sum(w.duration_s for w in a))
    qps_b = sent_b / max(1e-9, sum(w.duration_s for w in b))
    p95_a, p95_b = percentile(la, 95), percentile(lb, 95)
    delta = relative_delta(p95_a, p95_b)
    error_rate = 100.0 * errors_b / sent_b if sent_b else 100.0
    ci = window_bootstrap_relative_delta_ci(
        [w.latencies_ms for w in a], [w.latencies_ms for w in b], p95, resamples=1000, seed=plan.seed
    )
    # ΔQPS varies by window, not by request: resample the arms' per-window achieved rates.
    qps_ci = bootstrap_relative_delta_ci(
        [w.achieved_qps for w in a], [w.achieved_qps for w in b], _mean, resamples=1000, seed=plan.seed
    )
    srm = sample_ratio_mismatch([len(la), len(lb)])
    # Round r is the r-th window of each arm (A-B or B-A in time); a round cut short has no pair.
    by_round = [
        relative_delta(percentile(wa.latencies_ms, 95), percentile(wb.latencies_ms, 95))
        for wa, wb in zip(a, b, strict=False)
        if wa.latencies_ms and wb.latencies_ms
    ]
    mw = mann_whitney(la, lb)
    if not la or not lb:
        verdict = Verdict("FAIL", "no successful requests in an arm")
    else:
        verdict = judge_p95(
            delta,
            error_rate,
            plan.thresholds.judge(),
            samples=(len(la), len(lb)),
            min_samples=plan.min_samples_per_arm,
            srm_p=srm.p_value,
            delta_ci=(ci.low, ci.high),
            error_upper_pct=100.0 * wilson_interval(errors_b, sent_b, level=0.90).high,
            by_round=by_round,
        )
    warnings = list(verdict.cautions)
    imbalance = imbalance_of(len(la), len(lb))
    if (warning := imbalance.warning(srm.p_value)) is not None:
        warnings.append(warning)
    return Judgement(
        measured=bool(la and lb),
        delta_p95_pct=delta,
        delta_p95_ci=(ci.low, ci.high),
        delta_qps_pct=relative_delta(qps_a, qps_b),
        delta_qps_ci=(qps_ci.low, qps_ci.high),
        error_rate_pct=error_rate,
        error_rate_a_pct=100.0 * sum(w.errors for w in a) / sent_a if sent_a else 0.0,
        ab_imbalance_pct=imbalance.pct,
        srm_p=srm.p_value,
        p95_a_ms=p95_a,
        p95_b_ms=p95_b,
        qps_a=qps_a,
        qps_b=qps_b,
        samples=(len(la), len(lb)),
        delta_p95_by_round=by_round,
        mw_p=mw.p_value,
        hl_shift_ms=mw.hodges_lehmann,
        decision=verdict.decision,
        reason=verdict.reason,
        warnings=warnings,
    )


PROMETHEUS_ONLY = (
    "judged from Prometheus, per window: no per-request samples, so no SRM, Mann-Whitney or "
    "error-rate bound; the ΔP95 interval is by window"
)


def judge_prometheus(
    plan: Plan, a: list[WindowMetrics], b: list[WindowMetrics], sent: tuple[int, int] = (0, 0)
) -> Judgement:
    """ΔP95, the error rate and ΔQPS as Prometheus saw each window (an arm's value: the mean of its
    windows'); the seed's table decides. ``sent``: what our own load sent per arm, when it ran."""
    nan = float("nan")
    p95_a, p95_b = aggregate_arm(a, "p95_ms"), aggregate_arm(b, "p95_ms")
    err_b, err_a = aggregate_arm(b, "error_rate_pct"), aggregate_arm(a, "error_rate_pct")
    qps_a, qps_b = aggregate_arm(a, "throughput_qps"), aggregate_arm(b, "throughput_qps")
    measured = p95_a is not None and p95_b is not None and err_b is not None
    delta = relative_delta(p95_a, p95_b) if p95_a is not None and p95_b is not None else nan
    by_window_a = [w.p95_ms for w in a if w.p95_ms is not None]
    by_window_b = [w.p95_ms for w in b if w.p95_ms is not None]
    ci = bootstrap_relative_delta_ci(by_window_a, by_window_b, _mean, resamples=1000, seed=plan.seed)
    warnings = [PROMETHEUS_ONLY]
    if not measured:
        verdict = Verdict("FAIL", "Prometheus returned no p95 or error rate for an arm")
    else:
        verdict = decide_p95(delta, err_b or 0.0, plan.thresholds.judge())
        if len(by_window_a) > 1 and not (ci.high < 0 or ci.low > 0):
            warnings.append(f"by-window 95% CI of ΔP95 [{ci.low:+.1f}%, {ci.high:+.1f}%] does not exclude 0")
    return Judgement(
        measured=measured,
        delta_p95_pct=delta,
        delta_p95_ci=(ci.low, ci.high),
        delta_qps_pct=relative_delta(qps_a, qps_b) if qps_a is not None and qps_b is not None else nan,
        delta_qps_ci=(nan, nan),
        error_rate_pct=err_b if err_b is not None else nan,
        error_rate_a_pct=err_a if err_a is not None else nan,
        ab_imbalance_pct=nan,
        srm_p=nan,
        p95_a_ms=p95_a if p95_a is not None else nan,
        p95_b_ms=p95_b if p95_b is not None else nan,
        qps_a=qps_a if qps_a is not None else nan,
        qps_b=qps_b if qps_b is not None else nan,
        samples=sent,
        mw_p=nan,
        hl_shift_ms=nan,
        decision=verdict.decision,
        reason=verdict.reason,
        warnings=warnings,
    )
