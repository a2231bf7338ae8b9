"""The seed's ≤60-line summary and the mini report."""

from __future__ import annotations

import json
from typing import Any

from opslab.canary.plan import Plan

RULE = "=============================="


def render_summary(plan: Plan, r: dict[str, Any]) -> str:
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
    ]
    lines += ["RESULTS"]
    if r.get("source") == "report":
        imbalance = r.get("ab_imbalance_pct")
        lines += [
            f"- ΔP95: {pct(r.get('delta_p95_pct'), '+.1f')}",
            f"- ΔQPS: {pct(r.get('delta_qps_pct'), '+.1f')}",
            f"- Error Rate: {r.get('error_rate_pct') or 0.0:.2f}%",
            f"- AB Imbalance: {pct(imbalance, '.1f')}",
            f"- Source: the target's report ({plan.target.report_path})",
        ]
    elif r.get("measured"):
        lines += [
            f"- ΔP95: {r['delta_p95_pct']:+.1f}% "
            f"(95% CI {r['delta_p95_ci'][0]:+.1f}% .. {r['delta_p95_ci'][1]:+.1f}%)",
            f"- ΔQPS: {r['delta_qps_pct']:+.1f}% "
            f"(95% CI {r['delta_qps_ci'][0]:+.1f}% .. {r['delta_qps_ci'][1]:+.1f}%, by window)",
            f"- Error Rate: {r['error_rate_pct']:.2f}%",
            f"- AB Imbalance: {r['ab_imbalance_pct']:.1f}% (SRM chi-square p={r['srm_p']:.3g})",
            f"- P95 A/B: {r['p95_a_ms']:.1f}ms / {r['p95_b_ms']:.1f}ms; "
            f"samples {r['samples'][0]}/{r['samples'][1]}",
            f"- Mann-Whitney p={r['mw_p']:.3g}, Hodges-Lehmann shift {r['hl_shift_ms']:+.2f}ms",
        ]
    else:
        lines += [
            "- ΔP95: n/a",
            "- ΔQPS: n/a",
            f"- Error Rate: {r.get('error_rate_pct', 0.0):.2f}%",
            "- AB Imbalance: n/a",
        ]
    for w in r.get("warnings", [])[:6]:
        lines.append(f"- WARNING: {w}")
    lines += [
        "",
        "VERDICT",
        f"- Decision: {r['decision']}",
        f"- Reason: {r['reason']}",
        f"- Flags Applied: {'YES' if r['applied'] else 'NO'}"
        + (f" ({r['apply_deferred']})" if r.get("apply_deferred") else ""),
    ]
    if r.get("partial"):
        lines.append(f"- Partial run: {r['partial']}")
    if r.get("early_stop"):
        lines.append(f"- Early stop: {r['early_stop']}")
    nxt = {
        "PASS": "Monitor metrics for 24h",
        "EDGE": "Manual review: rerun with longer windows or more rounds",
        "FAIL": "Keep current flags; investigate before retrying",
    }[r["decision"]]
    if r.get("blocked"):
        nxt = "Fix the unhealthy dependencies, then rerun"
    elif r.get("apply_deferred"):
        nxt = "The sweep's confirmation run decides whether these flags are applied"
    lines += [
        "",
        "NEXT STEP",
        f"- {nxt}",
        "",
        "ROLLBACK",
        f"curl -X POST {plan.target.base_url.rstrip('/')}{plan.target.flags_path} \\",
        "  -H 'Content-Type: application/json' \\",
        f"  -d '{json.dumps(r['previous_flags'], separators=(',', ':'))}'",
    ]
    return "\n".join(lines[:60]) + "\n"


def pct(value: float | None, spec: str) -> str:
    return "n/a" if value is None else f"{value:{spec}}%"


def render_mini(r: dict[str, Any]) -> str:
    if r.get("source") == "report":
        return str(r["report_text"]).rstrip("\n") + "\n"
    if not r.get("measured"):
        err = r.get("error_rate_pct", 0.0)
        return f"COMBO MINI REPORT\nΔP95: n/a\nΔQPS: n/a\nErr%: {err:.2f}\nVerdict: {r['decision']}\n"
    return (
        f"COMBO MINI REPORT\nΔP95: {r['delta_p95_pct']:+.2f}%\nΔQPS: {r['delta_qps_pct']:+.2f}%\n"
        f"Err%: {r['error_rate_pct']:.2f}\nP95_A_ms: {r['p95_a_ms']:.2f}\nP95_B_ms: {r['p95_b_ms']:.2f}\n"
        f"Samples: {r['samples'][0]}/{r['samples'][1]}\nVerdict: {r['decision']}\n"
    )
