"""What canary tests read off a run's windows."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from opslab.canary import WindowSummary


def served_delta_pct(windows: Sequence[WindowSummary]) -> float:
    """ΔP95 of B against A as the target timed itself (each arm: the mean of its windows' served p95).

    The load generator's own delays on a busy machine add to both arms alike and dilute the relative ΔP95
    it measures; what the target reports of its own work does not move with them."""
    a = [w.served_p95_ms for w in windows if w.arm == "A" and w.served_p95_ms is not None]
    b = [w.served_p95_ms for w in windows if w.arm == "B" and w.served_p95_ms is not None]
    assert a and b and len(a) + len(b) == len(windows), f"windows without the target's own time: {windows}"
    return 100 * (fmean(b) - fmean(a)) / fmean(a)


def judged_as_an_improvement(decision: str, applied: bool, delta_p95_pct: float | None, reason: str) -> bool:
    """A real improvement is a PASS, applied, on a quiet machine. A busy one adds the load generator's own
    stalls to some windows, which dilutes what the client measured or leaves a round unconvinced: then the
    canary may only decline to confirm (an EDGE, nothing applied). It never fails the improvement, never
    applies an unconfirmed one, and always sees the improvement's direction. Returns whether it passed."""
    assert decision in ("PASS", "EDGE"), reason
    assert applied == (decision == "PASS"), reason
    assert delta_p95_pct is not None and delta_p95_pct < 0, reason
    return decision == "PASS"
