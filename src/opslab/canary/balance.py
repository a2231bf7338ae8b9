"""The AB imbalance: how far the smaller arm fell short of the larger one, as a share of the larger.

With 1,200 samples in A and 1,100 in B, B fell 8.3 % short (100 of 1,200). The symmetric figure
|a − b| / (a + b) — the deviation from an even split, ``judge.sample_ratio_mismatch``'s ``imbalance_pct``
— reads the same loss as 4.3 %, so a 5 % warning on it needed about 10 % of an arm lost. The warning
threshold (``IMBALANCE_WARN_PCT``) is a share of the larger arm too. Whether the difference is more than
chance is the SRM chi-square test's to say; this figure says how large it is, and which arm lost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IMBALANCE_WARN_PCT = 5.0  # the seed's "warn when sample imbalance > 5%": a share of the larger arm

Arm = Literal["A", "B"]


@dataclass(frozen=True, slots=True)
class Imbalance:
    pct: float
    """The smaller arm's shortfall from the larger, in percent of the larger (0 when equal)."""
    short_arm: Arm | None
    """The arm that fell short (None when both have as many samples)."""
    samples: tuple[int, int]

    def warning(self, srm_p: float | None = None) -> str | None:
        """The warning when the shortfall is over ``IMBALANCE_WARN_PCT``, naming the arm that fell short."""
        if self.short_arm is None or not self.pct > IMBALANCE_WARN_PCT:
            return None
        a, b = self.samples
        other: Arm = "A" if self.short_arm == "B" else "B"
        smaller, larger = min(a, b), max(a, b)
        srm = f"; SRM chi-square p={srm_p:.3g}" if srm_p is not None and srm_p == srm_p else ""
        return (
            f"AB imbalance {self.pct:.1f}% > {IMBALANCE_WARN_PCT:g}%: arm {self.short_arm} fell short of "
            f"arm {other} ({smaller} vs {larger} samples{srm})"
        )


def imbalance_of(a: int, b: int) -> Imbalance:
    """(max(a, b) − min(a, b)) / max(a, b) of the two arms' sample counts, in percent."""
    if a < 0 or b < 0:
        raise ValueError(f"sample counts cannot be negative: A={a}, B={b}")
    larger = max(a, b)
    if a == b:
        return Imbalance(0.0, None, (a, b))
    return Imbalance(100.0 * (larger - min(a, b)) / larger, "B" if b < a else "A", (a, b))


def reported_imbalance_warning(pct: float, srm_p: float | None = None) -> str | None:
    """The warning for a figure a target's report gave without the counts (its own definition, unknown)."""
    if not pct > IMBALANCE_WARN_PCT:
        return None
    srm = f" (SRM p={srm_p:.3g})" if srm_p is not None else ""
    return f"AB imbalance {pct:.1f}% > {IMBALANCE_WARN_PCT:g}% (as the target's report gives it){srm}"
