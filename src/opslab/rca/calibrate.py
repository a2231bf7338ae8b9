"""Confidence that says how often the localiser's answer is right, on runs it was not fitted on.

The step scorer's softmax is a ranking, not a probability of being right: out of its own system it is
far from one. The calibration maps what the localiser knows about its answer — how much of the chosen
agent's probability the step holds, whether a rule pointed at that very turn — to the probability
that the step is the annotated one, by a small logistic regression fitted on answers given to *held-out*
runs: runs of another system when the training runs come from two or more (leave one system out),
else runs of held-out folds. ``reliability`` bins answers by confidence and
sets the share right beside it: the reliability curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel

INPUTS = ("bias", "logit_within", "pinned")
Source = Literal["leave-one-system-out", "held-out-folds", "none"]
# A few dozen held-out answers cannot carry a steep curve: the slopes are shrunk hard toward the base
# rate, so that answers more confident than any the calibration saw (a run the scorers were fitted on)
# are not extrapolated into certainty.
L2 = 20.0


def inputs(within: float, pinned: bool) -> np.ndarray:
    q = min(max(within, 1e-4), 1 - 1e-4)
    return np.array([1.0, math.log(q / (1 - q)), float(pinned)])


@dataclass(frozen=True)
class Calibration:
    weights: np.ndarray
    source: Source = "none"
    fitted_on: int = 0

    def probability(self, x: np.ndarray) -> float:
        if self.source == "none":
            # Not calibrated: the share of the agent's probability the step holds, as it is.
            return float(1 / (1 + math.exp(-x[1])))
        return float(1 / (1 + math.exp(-float(x @ self.weights))))

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "fitted_on": self.fitted_on,
            "weights": {k: round(float(w), 5) for k, w in zip(INPUTS, self.weights, strict=True)},
        }

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> Calibration:
        if not data or not isinstance(data.get("weights"), dict):
            return cls(np.zeros(len(INPUTS)))
        weights: dict[str, float] = data["weights"]  # type: ignore[assignment]
        source = str(data.get("source") or "none")
        return cls(
            np.array([float(weights.get(k, 0.0)) for k in INPUTS]),
            source if source in ("leave-one-system-out", "held-out-folds") else "none",  # type: ignore[arg-type]
            int(str(data.get("fitted_on") or 0)),
        )


def fit_calibration(xs: Sequence[np.ndarray], right: Sequence[bool], source: Source) -> Calibration:
    """Logistic regression of being right on the answers' inputs, lightly penalised (not the bias)."""
    from scipy.optimize import minimize  # fitting only: analysing a run never loads SciPy

    if not xs:
        return Calibration(np.zeros(len(INPUTS)))
    x = np.vstack(xs)
    y = np.array(right, dtype=float)
    penalty = np.array([0.0, *([L2] * (len(INPUTS) - 1))])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        eps = 1e-9
        nll = -float(np.sum(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
        return nll + 0.5 * float(w @ (penalty * w)), x.T @ (p - y) + penalty * w

    w = minimize(loss, np.zeros(len(INPUTS)), jac=True, method="L-BFGS-B").x
    return Calibration(np.asarray(w), source, len(xs))


class Bin(BaseModel):
    """One bin of the reliability curve: answers whose confidence fell in [low, high)."""

    low: float
    high: float
    n: int
    confidence: float  # their mean confidence
    accuracy: float  # the share of them that were right


EDGES = (0.0, 0.1, 0.2, 0.35, 0.5, 0.8, 1.01)


def reliability(
    confidences: Sequence[float],
    right: Sequence[bool],
    edges: Sequence[float] = EDGES,
) -> list[Bin]:
    out = []
    for low, high in zip(edges, edges[1:], strict=False):
        idx = [i for i, c in enumerate(confidences) if low <= c < high]
        if not idx:
            continue
        out.append(
            Bin(
                low=low,
                high=min(high, 1.0),
                n=len(idx),
                confidence=round(sum(confidences[i] for i in idx) / len(idx), 4),
                accuracy=round(sum(1 for i in idx if right[i]) / len(idx), 4),
            )
        )
    return out


def expected_calibration_error(bins: Sequence[Bin]) -> float:
    n = sum(b.n for b in bins)
    return round(sum(b.n * abs(b.confidence - b.accuracy) for b in bins) / n, 4) if n else 0.0


ABSTAIN_GRID = (0.3, 0.2, 0.15, 0.1, 0.05, 0.02)
ABSTAIN_RIGHT = 0.05  # abstaining gives up answers that were right at most this often
ABSTAIN_MIN = 5  # held-out answers below a threshold before it is trusted


def abstention_threshold(confidences: Sequence[float], useful: Sequence[bool]) -> float:
    """The highest confidence below which held-out answers were (almost) never of use — neither the step
    nor the agent right: at least ``ABSTAIN_MIN`` of them, of use at most ``ABSTAIN_RIGHT`` of the time.
    None such: 0, never abstain."""
    for t in ABSTAIN_GRID:
        below = [r for c, r in zip(confidences, useful, strict=True) if c < t]
        if len(below) >= ABSTAIN_MIN and sum(below) <= ABSTAIN_RIGHT * len(below):
            return t
    return 0.0
