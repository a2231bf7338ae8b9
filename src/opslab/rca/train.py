"""Fitting the localiser and measuring it honestly.

The scorer is a conditional logit: for one run, P(turn i is decisive) = softmax_i(w · x_i), fitted by
maximum likelihood with an L2 penalty (scipy's L-BFGS) on annotated runs. Figures on runs the scorer
was fitted on are not results, so ``cross_validate`` refits it k times, each time without one fold of
runs, and scores every run with the scorers that never saw it. ``without`` removes one signal from
the examples, for the ablation (the same cross-validation without that signal).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from scipy.optimize import minimize

from opslab.rca.features import AGENT_FEATURES, FEATURES, agent_features, features
from opslab.rca.localize import Localized, Localizer, Scorer, candidates, localize
from opslab.rca.policy import fit_policy, lead_of
from opslab.rca.signals import Signal, detect
from opslab.rca.transcript import Transcript, agent_key

METHOD_VERSION = "localizer-2"
L2 = 0.3
AGENT_L2 = 10.0


@dataclass
class Example:
    """One annotated run: its transcript, signals, step features and the decisive turn and agent."""

    key: str
    group: str  # the dataset it came from (folds are stratified by it)
    transcript: Transcript
    signals: list[Signal]
    x: np.ndarray
    mask: np.ndarray
    truth: int | None  # index into the turns; None when the annotated step is not a candidate
    truth_agent: str  # agent key


def example(
    key: str,
    group: str,
    tr: Transcript,
    truth_step: int,
    truth_agent: str,
    signals: list[Signal] | None = None,
) -> Example:
    signals = detect(tr) if signals is None else signals
    mask = candidates(tr)
    truth = next((i for i, t in enumerate(tr.turns) if t.n == truth_step), None)
    if truth is not None and not mask[truth]:
        truth = None
    return Example(key, group, tr, signals, features(tr, signals), mask, truth, agent_key(truth_agent))


def _logit(xs: list[np.ndarray], ts: list[int], dim: int, l2: float) -> np.ndarray:
    """Maximum-likelihood weights of a conditional logit (softmax over each example's rows)."""

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.5 * l2 * float(w @ w), l2 * w
        for x, t in zip(xs, ts, strict=True):
            z = x @ w
            z = z - z.max()
            e = np.exp(z)
            p = e / e.sum()
            total -= float(z[t] - np.log(e.sum()))
            grad = grad - (x[t] - p @ x)
        return total, grad

    return np.asarray(minimize(loss, np.zeros(dim), jac=True, method="L-BFGS-B").x)


def fit(examples: list[Example], *, l2: float = L2, agent_l2: float = AGENT_L2) -> Localizer:
    """Both scorers: the step scorer on the annotated steps, then the agent scorer on its output."""
    usable = [e for e in examples if e.truth is not None]
    xs = [e.x[e.mask] for e in usable]
    ts = [int(np.flatnonzero(np.flatnonzero(e.mask) == e.truth)[0]) for e in usable]
    step = Scorer(FEATURES, _logit(xs, ts, len(FEATURES), l2))
    axs: list[np.ndarray] = []
    ats: list[int] = []
    # The agent scorer decides runs without a lead (the lead policy decides the others).
    unled = [e for e in examples if lead_of(e.transcript) is None] or examples
    for e in unled:
        p = step.probabilities(e.x, e.mask)
        keys, _, ax = agent_features(e.transcript, e.signals, p, e.mask)
        if e.truth_agent in keys:
            axs.append(ax)
            ats.append(keys.index(e.truth_agent))
    agent = Scorer(AGENT_FEATURES, _logit(axs, ats, len(AGENT_FEATURES), agent_l2))
    policy = fit_policy([(e.transcript, e.signals, e.truth_agent) for e in examples])
    meta = {
        "method": METHOD_VERSION,
        "l2": l2,
        "agent_l2": agent_l2,
        "fitted_on": len(examples),
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }
    return Localizer(step, agent, policy, meta)


def folds(examples: list[Example], k: int) -> list[list[int]]:
    """k folds of run indices, each dataset spread evenly over them (k >= len: leave-one-out)."""
    out: list[list[int]] = [[] for _ in range(min(k, len(examples)))]
    slot = 0
    for group in sorted({e.group for e in examples}):
        for i, e in enumerate(examples):
            if e.group == group:
                out[slot % len(out)].append(i)
                slot += 1
    return [f for f in out if f]


def cross_validate(examples: list[Example], *, k: int = 0, **params: float) -> dict[str, Localized | None]:
    """Each run localised by scorers fitted without it (k=0: leave-one-out)."""
    out: dict[str, Localized | None] = {}
    for fold in folds(examples, k or len(examples)):
        held = set(fold)
        model = fit([e for i, e in enumerate(examples) if i not in held], **params)
        for i in fold:
            e = examples[i]
            out[e.key] = localize(e.transcript, e.signals, model)
    return out


def without(examples: list[Example], kind: str) -> list[Example]:
    """The examples as if the signal ``kind`` did not exist (for the ablation)."""
    return [
        example(
            e.key,
            e.group,
            e.transcript,
            e.transcript.turns[e.truth].n if e.truth is not None else -1,
            e.truth_agent,
            [s for s in e.signals if s.kind != kind],
        )
        for e in examples
    ]
