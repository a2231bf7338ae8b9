"""What canary tests read off a run's windows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
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


def reached_every_round(windows: Sequence[WindowSummary]) -> bool:
    """Whether B was faster than A in every round (the r-th window of each arm), both as the target timed
    its own work (served p95) and as the load generator saw it (p95). A busy machine can stall a whole
    window, the target's handler or the requests waiting for it: then the data the canary judges no longer
    holds the improvement, and no judge may be asked to see it."""
    arm = {name: [w for w in windows if w.arm == name] for name in "AB"}
    rounds = list(zip(arm["A"], arm["B"], strict=False))
    return bool(rounds) and all(
        _faster(b.served_p95_ms, a.served_p95_ms) and _faster(b.p95_ms, a.p95_ms) for a, b in rounds
    )


def client_stalled(windows: Sequence[WindowSummary], factor: float = 1.5) -> bool:
    """Whether the load generator's own delays moved a window: its p95 over ``factor`` times the p95 the
    target timed itself in that window. Requests that waited on a busy machine, not in the target, can
    make an arm look slower to the client alone; a judge of the client's figures is then fooled by them."""
    return any(
        w.p95_ms is not None and w.served_p95_ms is not None and w.p95_ms > factor * w.served_p95_ms
        for w in windows
    )


def _faster(b: float | None, a: float | None) -> bool:
    return a is not None and b is not None and b < a


def judged_as_an_improvement(
    decision: str,
    applied: bool,
    delta_p95_pct: float | None,
    reason: str,
    windows: Sequence[WindowSummary] | None = None,
) -> bool:
    """A real improvement is a PASS, applied, on a quiet machine. A busy one adds the load generator's own
    stalls to some windows, which dilutes what the client measured or leaves a round unconvinced: then the
    canary may only decline to confirm (an EDGE, nothing applied). It never fails the improvement, never
    applies an unconfirmed one, and always sees the improvement's direction. Returns whether it passed.

    Given the ``windows``, the contract holds when every round shows the improvement; when a stall hid it
    in one (see ``reached_every_round``), the canary may judge what it measured, a FAIL included, and
    only never applies anything but a PASS."""
    if windows is not None and not reached_every_round(windows):
        assert applied == (decision == "PASS"), reason
        return applied
    assert decision in ("PASS", "EDGE"), reason
    assert applied == (decision == "PASS"), reason
    assert delta_p95_pct is not None and delta_p95_pct < 0, reason
    return decision == "PASS"


def judged_as_no_effect(decision: str, applied: bool, reason: str, windows: Sequence[WindowSummary]) -> None:
    """A candidate with no effect is not an improvement: a FAIL, or at most an EDGE when a busy machine's
    delays made a window read as one, never applied. Only when noise made B look faster in every round, as
    the target timed itself and as the load generator saw it (``reached_every_round``), is the data the
    canary judged that of an improvement: then it may judge what it measured, and applies only a PASS."""
    assert applied == (decision == "PASS"), reason
    if not reached_every_round(windows):
        assert decision in ("FAIL", "EDGE"), reason


def documented_exit_code(outcome: str) -> int:
    """The code of the first row of docs/canary.md's exit-code table whose outcome mentions ``outcome``."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "canary.md").read_text()
    section = docs.split("## Exit codes", 1)[1]
    table = next(part for part in section.split("\n\n") if part.startswith("| code |"))
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| ")]
    codes = [int(code) for code, text in rows if code.strip().isdigit() and outcome in text]
    assert codes, f"docs/canary.md's exit-code table has no row for {outcome!r}"
    return codes[0]
