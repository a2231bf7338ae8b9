"""Custom metrics (Kayenta's metric sets): each read per arm — a statistic of the load generator's
requests, or a PromQL query per window — compared B against A and judged by its own thresholds. A
critical metric's FAIL fails the canary; any other FAIL or EDGE keeps a PASS from being applied (EDGE)."""

from __future__ import annotations

import math

from opslab.canary.metrics_plan import CustomMetric
from opslab.canary.model import Measurement, MetricResult, Verdict
from opslab.canary.prometheus import WindowMetrics, aggregate_custom
from opslab.judge import judge_worsening, percentile, relative_delta


def load_statistic(stat: str, windows: list[Measurement]) -> float | None:
    """One arm's value of a load-generator statistic, pooled over its windows."""
    sent = sum(w.sent for w in windows)
    if stat == "error_rate":
        return 100.0 * sum(w.errors for w in windows) / sent if sent else None
    if stat == "throughput":
        seconds = sum(w.duration_s for w in windows)
        return sent / seconds if seconds > 0 else None
    latencies = [x for w in windows for x in w.latencies_ms]
    if not latencies:
        return None
    if stat == "mean":
        return sum(latencies) / len(latencies)
    if stat == "max":
        return max(latencies)
    return percentile(latencies, float(stat.removeprefix("p")))


def judge_metric(
    m: CustomMetric,
    a: list[Measurement],
    b: list[Measurement],
    wa: list[WindowMetrics],
    wb: list[WindowMetrics],
) -> MetricResult:
    if m.stat is not None:
        va, vb = load_statistic(m.stat, a), load_statistic(m.stat, b)
    else:
        va, vb = aggregate_custom(wa, m.name), aggregate_custom(wb, m.name)
    delta = relative_delta(va, vb) if va is not None and vb is not None else math.nan
    if va is None or vb is None:
        worse = math.nan
    elif va == vb:
        worse = 0.0
    elif m.compare == "absolute":
        worse = vb - va if m.direction == "lower" else va - vb
    else:
        worse = delta if m.direction == "lower" else -delta
    decision = judge_worsening(worse, fail_above=m.fail_worse_by, edge_above=m.edge_worse_by)
    unit = "%" if m.compare == "relative" else ""
    if worse != worse:
        reason = "no data in an arm" if va is None or vb is None else "A is 0: no relative change"
    elif worse > 0:
        reason = f"{worse:.3g}{unit} worse (fail above {m.fail_worse_by:g}{unit})"
    else:
        reason = f"{-worse:.3g}{unit} better" if worse < 0 else "unchanged"
    return MetricResult(
        name=m.name,
        source="load" if m.stat is not None else "prometheus",
        direction=m.direction,
        a=va,
        b=vb,
        delta_pct=None if delta != delta else delta,
        decision=decision,
        critical=m.critical,
        reason=reason,
    )


def with_guards(decision: Verdict, reason: str, results: list[MetricResult]) -> tuple[Verdict, str]:
    """The canary's verdict once its custom metrics are heard."""
    critical = [r for r in results if r.critical and r.decision == "FAIL"]
    if critical:
        r = critical[0]
        return "FAIL", f"critical metric {r.name}: {r.reason}"
    doubtful = [r for r in results if r.decision != "PASS"]
    if decision == "PASS" and doubtful:
        r = doubtful[0]
        return "EDGE", f"{reason}, but metric {r.name} is {r.decision}: {r.reason}"
    return decision, reason
