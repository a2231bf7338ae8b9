"""The canary's verdict on P95 in words that follow the direction of the measured change.

``judge.decide`` and ``judge.be_careful`` give the decision (the seed's table, made more careful by the
statistics); their sentences assume an improvement that fell short. A canary's reason must say what
happened instead: a regression (B slower than A on P95) is called one — "B is 52.0% worse than A on
P95" — an improvement too small says so ("no worthwhile improvement"), and "not in every round" is said
only of an improvement that some round does not show. The decisions themselves are the judge's."""

from __future__ import annotations

from collections.abc import Sequence

from opslab.judge import Thresholds, Verdict, be_careful, decide


def change_in_words(delta_p95_pct: float) -> str:
    """How B's P95 compares with A's, in a clause (``B is 52.0% worse than A on P95``)."""
    if delta_p95_pct != delta_p95_pct:
        return "ΔP95 could not be computed"
    if delta_p95_pct > 0:
        return f"B is {delta_p95_pct:.1f}% worse than A on P95"
    if delta_p95_pct < 0:
        return f"B is {-delta_p95_pct:.1f}% better than A on P95"
    return "B's P95 is the same as A's"


def decide_p95(delta_p95_pct: float, error_rate_pct: float, t: Thresholds) -> Verdict:
    """The seed's table (``judge.decide``), its reason worded by the direction of ΔP95."""
    verdict = decide(delta_p95_pct, error_rate_pct, t)
    delta, words = delta_p95_pct, change_in_words(delta_p95_pct)
    if error_rate_pct >= t.max_error_rate:
        return Verdict(verdict.decision, f"{verdict.reason}; {words}")
    if delta != delta:
        return Verdict("FAIL", words)
    if delta > 0:
        if verdict.decision == "FAIL":
            return Verdict("FAIL", f"regression: {words} (ΔP95 {delta:+.1f}%)")
        # Thresholds above 0 accept a bounded slowdown; it is still one.
        limit = t.pass_delta_p95_max if verdict.decision == "PASS" else t.edge_delta_p95_max
        review = ", manual review" if verdict.decision == "EDGE" else ""
        return Verdict(verdict.decision, f"{words}, within the {limit:+g}% the thresholds allow{review}")
    if verdict.decision == "FAIL":
        needed = f"the {-t.edge_delta_p95_max:g}% needed"
        if delta == 0:
            return Verdict("FAIL", f"{words} (ΔP95 +0.0%): no worthwhile improvement")
        return Verdict("FAIL", f"{words}, less than {needed}: no worthwhile improvement")
    if delta == 0:
        return Verdict(verdict.decision, f"{words}, as the thresholds allow")
    return verdict


def round_caution(delta_p95_pct: float, by_round: Sequence[float], round_max: float) -> str | None:
    """With two rounds or more: an improvement some round does not show (a round's ΔP95 above
    ``round_max``), or a regression some round does not show (a round where B was not slower)."""
    if len(by_round) < 2:
        return None
    shown = ", ".join(f"{d:+.1f}%" for d in by_round)
    if delta_p95_pct > 0:
        faster = sum(1 for d in by_round if d <= 0)
        if not faster:
            return None
        rounds = f"B was not slower in {faster} of {len(by_round)}"
        return f"the regression is not in every round: {rounds} (ΔP95 by round: {shown})"
    if max(by_round) > round_max:
        return f"the improvement is not in every round (ΔP95 by round: {shown})"
    return None


def judge_p95(
    delta_p95_pct: float,
    error_rate_pct: float,
    t: Thresholds,
    *,
    samples: tuple[int, int],
    min_samples: int,
    srm_p: float,
    delta_ci: tuple[float, float],
    error_upper_pct: float,
    by_round: Sequence[float],
) -> Verdict:
    """``decide_p95`` made more careful as ``judge.be_careful`` does, the round check worded here: a PASS
    with any caution is EDGE ("inconclusive"), every caution listed."""
    first = decide_p95(delta_p95_pct, error_rate_pct, t)
    careful = be_careful(
        first,
        samples=samples,
        min_samples=min_samples,
        srm_p=srm_p,
        delta_ci=delta_ci,
        error_upper_pct=error_upper_pct,
        max_error_rate=t.max_error_rate,
    )
    note = round_caution(delta_p95_pct, by_round, t.edge_delta_p95_max)
    if note is None:
        return careful
    cautions = [*careful.cautions, note]
    if first.decision == "PASS":
        return Verdict("EDGE", f"inconclusive: {first.reason}, but {'; '.join(cautions)}", cautions)
    return Verdict(careful.decision, careful.reason, cautions)
