"""The seed's ≤60-line summary and the mini report."""

from __future__ import annotations

import json

from opslab.canary.model import CanaryResult, Judgement, Outcome
from opslab.canary.plan import Plan

RULE = "=============================="
MAX_LINES = 60
NEXT_STEP = {
    "PASS": "Monitor metrics for 24h",
    "EDGE": "Manual review: rerun with longer windows or more rounds",
    "FAIL": "Keep current flags; investigate before retrying",
}


def render_summary(plan: Plan, r: CanaryResult) -> str:
    e = plan.experiment
    lines = [
        RULE,
        "LABOPS AGENT V1 - EXECUTION SUMMARY",
        RULE,
        "",
        "INPUTS",
        f"- QPS: {e.qps}, Window: {e.window_sec:g}s, Rounds: {e.rounds}",
        f"- Flow: {e.flow_policy}, Target P95: {e.target_p95:g}ms",
        f"- Routing: {e.routing_mode}, TopK Threshold: {e.topk_threshold}",
        f"- Target: {plan.target.base_url}, Seed: {plan.seed}, Time budget: {plan.time_budget:g}s",
        "",
        "RESULTS",
    ]
    if r.report is not None:
        lines += [
            f"- ΔP95: {pct(r.report.delta_p95_pct, '+.1f')}",
            f"- ΔQPS: {pct(r.report.delta_qps_pct, '+.1f')}",
            f"- Error Rate: {r.report.error_rate_pct or 0.0:.2f}%",
            f"- AB Imbalance: {pct(r.report.ab_imbalance_pct, '.1f')}",
            f"- Source: the target's report ({plan.target.report_path})",
        ]
    elif r.judgement is not None and r.judgement.measured:
        lines += _statistics(r.judgement)
    else:
        lines += [
            "- ΔP95: n/a",
            "- ΔQPS: n/a",
            f"- Error Rate: {r.error_rate_pct or 0.0:.2f}%",
            "- AB Imbalance: n/a",
        ]
    lines += [f"- WARNING: {w}" for w in r.warnings[:6]]
    lines += [
        "",
        "VERDICT",
        f"- Decision: {r.decision}",
        f"- Reason: {r.reason}",
        f"- Flags Applied: {'YES' if r.applied else 'NO'}"
        + (f" ({r.apply_deferred})" if r.apply_deferred else ""),
    ]
    if r.partial:
        lines.append(f"- Partial run: {r.partial}")
    if r.early_stop:
        lines.append(f"- Early stop: {r.early_stop}")
    nxt = NEXT_STEP[r.decision]
    if r.blocked:
        nxt = "Fix the unhealthy dependencies, then rerun"
    elif r.apply_deferred:
        nxt = "The sweep's confirmation run decides whether these flags are applied"
    lines += [
        "",
        "NEXT STEP",
        f"- {nxt}",
        "",
        "ROLLBACK",
        f"curl -X POST {plan.target.base_url.rstrip('/')}{plan.target.flags_path} \\",
        "  -H 'Content-Type: application/json' \\",
        f"  -d '{json.dumps(r.previous_flags, separators=(',', ':'))}'",
    ]
    return "\n".join(lines[:MAX_LINES]) + "\n"


def _statistics(j: Judgement) -> list[str]:
    return [
        f"- ΔP95: {j.delta_p95_pct:+.1f}% (95% CI {j.delta_p95_ci[0]:+.1f}% .. {j.delta_p95_ci[1]:+.1f}%)",
        f"- ΔQPS: {j.delta_qps_pct:+.1f}% "
        f"(95% CI {j.delta_qps_ci[0]:+.1f}% .. {j.delta_qps_ci[1]:+.1f}%, by window)",
        f"- Error Rate: {j.error_rate_pct:.2f}%",
        f"- AB Imbalance: {j.ab_imbalance_pct:.1f}% (SRM chi-square p={j.srm_p:.3g})",
        f"- P95 A/B: {j.p95_a_ms:.1f}ms / {j.p95_b_ms:.1f}ms; samples {j.samples[0]}/{j.samples[1]}",
        f"- Mann-Whitney p={j.mw_p:.3g}, Hodges-Lehmann shift {j.hl_shift_ms:+.2f}ms",
    ]


def pct(value: float | None, spec: str) -> str:
    return "n/a" if value is None else f"{value:{spec}}%"


def render_mini(r: Outcome) -> str:
    """``LAB_COMBO_REPORT_MINI.txt``: ΔP95, ΔQPS, Err% (a target's own report is kept as it came)."""
    if r.report is not None:
        return r.report.text.rstrip("\n") + "\n"
    j = r.judgement
    if j is None or not j.measured:
        err = r.error_rate_pct or 0.0
        return f"COMBO MINI REPORT\nΔP95: n/a\nΔQPS: n/a\nErr%: {err:.2f}\nVerdict: {r.decision}\n"
    return (
        f"COMBO MINI REPORT\nΔP95: {j.delta_p95_pct:+.2f}%\nΔQPS: {j.delta_qps_pct:+.2f}%\n"
        f"Err%: {j.error_rate_pct:.2f}\nP95_A_ms: {j.p95_a_ms:.2f}\nP95_B_ms: {j.p95_b_ms:.2f}\n"
        f"Samples: {j.samples[0]}/{j.samples[1]}\nVerdict: {r.decision}\n"
    )
