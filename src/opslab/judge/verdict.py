"""PASS / EDGE / FAIL from the seed's decision table; statistics may only make a verdict more careful.

    PASS  ΔP95 ≤ pass_max (−10 %)            and error rate < max_error_rate (1 %)
    EDGE  pass_max < ΔP95 ≤ edge_max (−5 %)  and error rate < max_error_rate
    FAIL  otherwise

A PASS becomes EDGE ("inconclusive") when an arm has too few samples, the arms' sizes mismatch the
plan (SRM), the interval of ΔP95 does not exclude 0, the candidate's error rate is not confidently under
its limit, or (with several rounds) the improvement is not in every round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Decision = Literal["PASS", "EDGE", "FAIL"]


@dataclass(frozen=True)
class Thresholds:
    pass_delta_p95_max: float = -10.0
    edge_delta_p95_max: float = -5.0
    max_error_rate: float = 1.0  # percent


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    cautions: list[str] = field(default_factory=list)


def decide(delta_p95_pct: float, error_rate_pct: float, t: Thresholds) -> Verdict:
    if error_rate_pct >= t.max_error_rate:
        return Verdict("FAIL", f"error rate {error_rate_pct:.2f}% is not below {t.max_error_rate:g}%")
    if delta_p95_pct <= t.pass_delta_p95_max:
        return Verdict("PASS", f"P95 improved by {-delta_p95_pct:.1f}% (≥{-t.pass_delta_p95_max:g}%)")
    if delta_p95_pct <= t.edge_delta_p95_max:
        return Verdict(
            "EDGE",
            f"P95 improved by {-delta_p95_pct:.1f}%: between {-t.edge_delta_p95_max:g}% and "
            f"{-t.pass_delta_p95_max:g}%, manual review",
        )
    return Verdict(
        "FAIL", f"ΔP95 {delta_p95_pct:+.1f}% is above {t.edge_delta_p95_max:g}%: no worthwhile improvement"
    )


def be_careful(
    verdict: Verdict,
    *,
    samples: tuple[int, int],
    min_samples: int,
    srm_p: float,
    delta_ci: tuple[float, float],
    alpha_srm: float = 0.001,
    error_upper_pct: float | None = None,
    max_error_rate: float | None = None,
    by_round: Sequence[float] = (),
    round_max: float | None = None,
) -> Verdict:
    """Downgrade a PASS to EDGE when the evidence behind it is weak; say why. ``error_upper_pct`` is the
    candidate error rate's upper confidence bound: a PASS needs it below ``max_error_rate``, not only the
    point estimate (3 errors in 360 requests measure 0.8 %, and say little against 2 %). ``by_round``: ΔP95
    of each round on its own; with two or more, a PASS needs the improvement in every one of them (each
    at most ``round_max``): one disturbed window can make a pooled difference that no other round shows."""
    cautions = []
    if min(samples) < min_samples:
        cautions.append(f"too few samples ({min(samples)} < {min_samples} in an arm)")
    if srm_p < alpha_srm:
        cautions.append(f"sample-ratio mismatch between arms (chi-square p={srm_p:.2g})")
    lo, hi = delta_ci
    if not (hi < 0 or lo > 0):
        cautions.append(f"95% CI of ΔP95 [{lo:+.1f}%, {hi:+.1f}%] does not exclude 0")
    if error_upper_pct is not None and max_error_rate is not None and error_upper_pct >= max_error_rate:
        bound = f"{error_upper_pct:.2f}%"
        cautions.append(
            f"the error rate's one-sided 95% upper bound {bound} is not under {max_error_rate:g}%"
        )
    if round_max is not None and len(by_round) > 1 and max(by_round) > round_max:
        shown = ", ".join(f"{d:+.1f}%" for d in by_round)
        cautions.append(f"the improvement is not in every round (ΔP95 by round: {shown})")
    if verdict.decision == "PASS" and cautions:
        return Verdict("EDGE", f"inconclusive: {verdict.reason}, but {'; '.join(cautions)}", cautions)
    return Verdict(verdict.decision, verdict.reason, cautions)


SEVERITY: dict[Decision, int] = {"PASS": 0, "EDGE": 1, "FAIL": 2}


def stricter(a: Decision, b: Decision) -> Decision:
    """The more careful of two verdicts (FAIL over EDGE over PASS)."""
    return a if SEVERITY[a] >= SEVERITY[b] else b


def judge_worsening(worse_by: float, *, fail_above: float, edge_above: float | None = None) -> Decision:
    """A guard metric's verdict from how much worse the candidate is (in the metric's units or percent;
    negative: better): FAIL above ``fail_above``, EDGE above ``edge_above``, else PASS. NaN (no data on
    one side) is a FAIL: a guard that cannot be read guards nothing."""
    if worse_by != worse_by or worse_by > fail_above:
        return "FAIL"
    if edge_above is not None and worse_by > edge_above:
        return "EDGE"
    return "PASS"
