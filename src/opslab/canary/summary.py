"""The seed's ≤60-line summary and the mini report."""

from __future__ import annotations

import json
import math
import shlex

from opslab.canary.balance import imbalance_of
from opslab.canary.model import CanaryResult, Flags, Judgement, Outcome
from opslab.canary.plan import Plan
from opslab.canary.secrets import SENSITIVE
from opslab.canary.strict import ENV_REF

RULE = "=============================="
MAX_LINES = 60
NEXT_STEP = {
    "PASS": "Monitor metrics for 24h",
    "EDGE": "Manual review: rerun with longer windows or more rounds",
    "FAIL": "Keep current flags; investigate before retrying",
    "INTERRUPTED": "Baseline flags restored; rerun when ready (nothing was judged or applied)",
}
NOT_RESTORED = "Restore the baseline NOW with the ROLLBACK command below: the target may still serve B"


def render_summary(plan: Plan, r: CanaryResult) -> str:
    e = plan.experiment
    t = plan.target
    lines = [
        RULE,
        "LABOPS AGENT V1 - EXECUTION SUMMARY",
        RULE,
        "",
        "INPUTS",
        f"- QPS: {e.qps}, Window: {e.window_sec:g}s, Rounds: {e.rounds}",
        *_candidate(plan),
        f"- Target: {t.base_url}, Seed: {plan.seed}, Time budget: {plan.time_budget:g}s",
    ]
    if t.requests or plan.metrics.source != "load":
        load = ", ".join(f"{r.label} ×{r.weight:g}" for r in t.mix()) if plan.metrics.load else "none"
        lines.append(f"- Requests: {_clip(load, 90)}; Metrics: {plan.metrics.source}")
    lines += ["", "RESULTS", *_results(plan, r)]
    lines += [
        f"- {m.name}: {_num(m.a)} → {_num(m.b)} ({pct(m.delta_pct, '+.1f')}), {m.decision}"
        + (" [critical]" if m.critical else "")
        for m in r.metrics[:8]
    ]
    lines += [f"- WARNING: {_clip(w, 200)}" for w in r.warnings[:6]]
    lines += ["", "VERDICT", f"- Decision: {r.decision}", f"- Reason: {_clip(r.reason, 300)}"]
    if r.target_verdict is not None and r.target_verdict != r.our_verdict:
        lines.append(
            f"- Verdicts: target's report {r.target_verdict}, ours {r.our_verdict} "
            f"(report_verdict: {plan.report_verdict})"
        )
    lines.append(
        f"- Flags Applied: {'YES' if r.applied else 'NO'}"
        + (f" ({r.apply_deferred})" if r.apply_deferred else "")
    )
    if r.restore_failed:
        lines.append("- BASELINE NOT RESTORED: the target may still have the candidate flags")
    if r.interrupted:
        lines.append(
            f"- Interrupted: {r.interrupted}; baseline flags "
            + ("NOT restored" if r.restore_failed else "restored and verified")
        )
    if r.partial:
        lines.append(f"- Partial run: {r.partial}")
    if r.early_stop:
        lines.append(f"- Early stop: {r.early_stop}")
    nxt = NEXT_STEP[r.decision]
    if r.restore_failed:
        nxt = NOT_RESTORED
    elif r.blocked:
        nxt = "Fix the unhealthy dependencies, then rerun"
    elif r.apply_deferred:
        nxt = "The sweep's confirmation run decides whether these flags are applied"
    rollback = rollback_command(plan, r.previous_flags).splitlines()
    head = lines[: MAX_LINES - 6 - len(rollback)]
    return "\n".join([*head, "", "NEXT STEP", f"- {nxt}", "", "ROLLBACK", *rollback]) + "\n"


def _candidate(plan: Plan) -> list[str]:
    e = plan.experiment
    if e.flags is not None:
        return [f"- Candidate flags: {_clip(json.dumps(e.flags, separators=(',', ':')), 200)}"]
    return [
        f"- Flow: {e.flow_policy}, Target P95: {e.target_p95:g}ms",
        f"- Routing: {e.routing_mode}, TopK Threshold: {e.topk_threshold}",
    ]


def _results(plan: Plan, r: CanaryResult) -> list[str]:
    if r.report is not None:
        return [
            f"- ΔP95: {pct(r.report.delta_p95_pct, '+.1f')}",
            f"- ΔQPS: {pct(r.report.delta_qps_pct, '+.1f')}",
            f"- Error Rate: {pct(r.report.error_rate_pct, '.2f')}",
            f"- AB Imbalance: {_imbalance(r.report.ab_imbalance_pct, r.report.srm_p, r.report.samples)}",
            f"- Source: the target's report ({plan.target.report_path})",
        ]
    j = r.judgement
    if j is not None and j.measured and r.judged_by == "prometheus":
        return [
            f"- ΔP95: {j.delta_p95_pct:+.1f}% (by window, 95% CI {_ci(j.delta_p95_ci)})",
            f"- ΔQPS: {pct(_finite(j.delta_qps_pct), '+.1f')}",
            f"- Error Rate: {j.error_rate_pct:.2f}%",
            "- AB Imbalance: n/a",
            f"- P95 A/B: {j.p95_a_ms:.1f}ms / {j.p95_b_ms:.1f}ms; source: Prometheus",
            *_load_check(r),
        ]
    if j is not None and j.measured:
        return _statistics(j)
    # Nothing measured (a blocked or unreachable target, no windows): no number to show, not a 0.
    return [
        "- ΔP95: n/a",
        "- ΔQPS: n/a",
        f"- Error Rate: {pct(r.error_rate_pct, '.2f')}",
        "- AB Imbalance: n/a",
    ]


def _load_check(r: CanaryResult) -> list[str]:
    c = r.load_check
    if c is None or not c.measured:
        return []
    agree = "agrees" if c.decision == (r.judgement.decision if r.judgement else None) else "DISAGREES"
    return [f"- Load generator, same windows: ΔP95 {c.delta_p95_pct:+.1f}%, {c.decision} ({agree})"]


def rollback_command(plan: Plan, flags: Flags, *, one_line: bool = False) -> str:
    """The exact command that puts ``flags`` back: the plan's method and headers, a header from
    ``${ENV}`` left for the shell to expand, a literal credential replaced by a placeholder."""
    t = plan.target
    parts = [f"curl -X {t.flags_method} {shlex.quote(t.base_url + t.flags_path)}"]
    for name, value in t.headers.items():
        if ENV_REF.search(value):
            escaped = f"{name}: {value}".replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
            parts.append(f'-H "{escaped}"')
        elif SENSITIVE.search(name):
            parts.append(f"-H {shlex.quote(f'{name}: <{name.lower()}>')}")
        else:
            parts.append(f"-H {shlex.quote(f'{name}: {value}')}")
    parts += [
        "-H 'Content-Type: application/json'",
        f"-d {shlex.quote(json.dumps(flags, separators=(',', ':')))}",
    ]
    return " ".join(parts) if one_line else " \\\n  ".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _ci(ci: tuple[float, float]) -> str:
    lo, hi = ci
    return "n/a" if lo != lo or hi != hi else f"{lo:+.1f}% .. {hi:+.1f}%"


def _statistics(j: Judgement) -> list[str]:
    srm = f"{j.srm_p:.3g}"
    return [
        f"- ΔP95: {j.delta_p95_pct:+.1f}% (95% CI {j.delta_p95_ci[0]:+.1f}% .. {j.delta_p95_ci[1]:+.1f}%, "
        f"by window{_rounds(j.delta_p95_by_round)})",
        f"- ΔQPS: {j.delta_qps_pct:+.1f}% "
        f"(95% CI {j.delta_qps_ci[0]:+.1f}% .. {j.delta_qps_ci[1]:+.1f}%, by window)",
        f"- Error Rate: {j.error_rate_pct:.2f}%",
        f"- AB Imbalance: {j.ab_imbalance_pct:.1f}% ({_short_arm(j.samples, f'SRM chi-square p={srm}')})",
        f"- P95 A/B: {j.p95_a_ms:.1f}ms / {j.p95_b_ms:.1f}ms; samples {j.samples[0]}/{j.samples[1]}",
        f"- Mann-Whitney p={j.mw_p:.3g}, Hodges-Lehmann shift {j.hl_shift_ms:+.2f}ms",
    ]


def _imbalance(pct_: float | None, srm_p: float | None, samples: tuple[int, int] | None) -> str:
    if pct_ is None:
        return "n/a"
    if samples is None or srm_p is None:
        return f"{pct_:.1f}%"
    counts = f"samples {samples[0]}/{samples[1]}, SRM chi-square p={srm_p:.3g}"
    return f"{pct_:.1f}% ({_short_arm(samples, counts)})"


def _short_arm(samples: tuple[int, int], rest: str) -> str:
    """``rest``, after the arm that fell short when one did (``B short of A; …``)."""
    arm = imbalance_of(*samples).short_arm
    return f"{arm} short of {'A' if arm == 'B' else 'B'}; {rest}" if arm else rest


def _rounds(deltas: list[float]) -> str:
    return "; rounds " + ", ".join(f"{d:+.1f}%" for d in deltas) if len(deltas) > 1 else ""


def pct(value: float | None, spec: str) -> str:
    return "n/a" if value is None else f"{value:{spec}}%"


def render_mini(r: Outcome) -> str:
    """``LAB_COMBO_REPORT_MINI.txt``: ΔP95, ΔQPS, Err% (a target's own report is kept as it came)."""
    if r.report is not None:
        return r.report.text.rstrip("\n") + "\n"
    j = r.judgement
    if j is None or not j.measured:
        err = "n/a" if r.error_rate_pct is None else f"{r.error_rate_pct:.2f}"
        return f"COMBO MINI REPORT\nΔP95: n/a\nΔQPS: n/a\nErr%: {err}\nVerdict: {r.decision}\n"
    return (
        f"COMBO MINI REPORT\nΔP95: {j.delta_p95_pct:+.2f}%\nΔQPS: {j.delta_qps_pct:+.2f}%\n"
        f"Err%: {j.error_rate_pct:.2f}\nP95_A_ms: {j.p95_a_ms:.2f}\nP95_B_ms: {j.p95_b_ms:.2f}\n"
        f"Samples: {j.samples[0]}/{j.samples[1]}\nVerdict: {r.decision}\n"
    )
