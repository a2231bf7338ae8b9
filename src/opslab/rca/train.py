"""Fitting the localiser to annotated runs.

The step scorer is a conditional logit: P(turn i is decisive) = softmax_i(w · x_i) over the turns of
the annotated agent (at inference it chooses among the chosen agent's turns), fitted by maximum
likelihood (scipy's L-BFGS) with an L2 penalty that is heavier on where a turn sits than on what it
says (``CONTEXT_L2``), heavier on a single signal than on its family (``SIGNAL_L2``: what one system
teaches about a family carries to another system's members of it), and with the signs known in advance
as bounds (``NONNEGATIVE``). The agent scorer and the lead policy's thresholds follow, then the
calibration (``calibrate.py``), fitted on answers to runs held out of the fit: whole systems when the
runs come from two or more (leave one system out), else folds.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
from scipy.optimize import minimize

from opslab.errors import InvalidInput
from opslab.rca.calibrate import Source, abstention_threshold, fit_calibration
from opslab.rca.features import (
    AGENT_FEATURES,
    FEATURES,
    NONNEGATIVE,
    POSITION,
    agent_features,
    failing_turns,
    features,
    owners,
)
from opslab.rca.localize import calibration_inputs, candidates, localize
from opslab.rca.policy import fit_policy
from opslab.rca.scoring import Localizer, Scorer
from opslab.rca.signals import Signal, detect
from opslab.rca.transcript import Transcript, agent_key

METHOD_VERSION = "localizer-3"
L2 = 0.3
AGENT_L2 = 10.0
CONTEXT_L2 = 10.0
SIGNAL_L2 = 3.0
CALIBRATION_FOLDS = 4  # when the runs come from one system

Tick = Callable[[str], None]


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


def _logit(
    xs: list[np.ndarray],
    ts: list[int],
    dim: int,
    l2: float | np.ndarray,
    bounds: list[tuple[float | None, float | None]] | None = None,
) -> np.ndarray:
    """Maximum-likelihood weights of a conditional logit (softmax over each example's rows)."""

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.5 * float(w @ (l2 * w)), l2 * w
        for x, t in zip(xs, ts, strict=True):
            z = x @ w
            z = z - z.max()
            e = np.exp(z)
            p = e / e.sum()
            total -= float(z[t] - np.log(e.sum()))
            grad = grad - (x[t] - p @ x)
        return total, grad

    return np.asarray(minimize(loss, np.zeros(dim), jac=True, method="L-BFGS-B", bounds=bounds).x)


def _within(e: Example) -> np.ndarray:
    """The candidate turns of the annotated agent (the scorer picks among the chosen agent's turns)."""
    own = np.array(owners(e.transcript, failing_turns(e.transcript, e.signals))) == e.truth_agent
    m = e.mask & own
    return m if e.truth is not None and m[e.truth] else e.mask


def fit_scorers(examples: list[Example], *, l2: float = L2, agent_l2: float = AGENT_L2) -> Localizer:
    """Both scorers and the lead policy, uncalibrated: the step scorer on the annotated steps, then the
    agent scorer on its output."""
    usable = [e for e in examples if e.truth is not None]
    masks = [_within(e) for e in usable]
    xs = [e.x[m] for e, m in zip(usable, masks, strict=True)]
    ts = [int(np.flatnonzero(np.flatnonzero(m) == e.truth)[0]) for e, m in zip(usable, masks, strict=True)]
    penalty = l2 * np.array(
        [CONTEXT_L2 if f in POSITION else SIGNAL_L2 if f.startswith("sig_") else 1.0 for f in FEATURES]
    )
    bounds: list[tuple[float | None, float | None]] = [
        (0.0, None) if f in NONNEGATIVE else (None, None) for f in FEATURES
    ]
    step = Scorer(FEATURES, _logit(xs, ts, len(FEATURES), penalty, bounds))
    axs: list[np.ndarray] = []
    ats: list[int] = []
    # Its features are structural (who directs, who acts), so every run teaches it, led or not; at
    # inference the lead policy decides the runs with a lead.
    for e in examples:
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
    return Localizer(step, agent, policy, meta=meta)


def fit(
    examples: list[Example], *, calibrate: bool = True, tick: Tick | None = None, **params: float
) -> Localizer:
    """The localiser, calibrated on held-out answers (``tick`` is told of each fit, for a progress bar)."""
    if not examples:
        raise InvalidInput.for_field("runs", "no annotated run to fit on")
    model = fit_scorers(examples, **params)
    if tick:
        tick("fit")
    if not calibrate:
        return model
    groups = sorted({e.group for e in examples})
    if len(groups) >= 2:
        source: Source = "leave-one-system-out"
        held = [[i for i, e in enumerate(examples) if e.group == g] for g in groups]
    else:
        source = "held-out-folds"
        held = [list(range(len(examples)))[k::CALIBRATION_FOLDS] for k in range(CALIBRATION_FOLDS)]
    xs: list[np.ndarray] = []
    right: list[bool] = []  # the step
    useful: list[bool] = []  # the step or the agent: what abstaining gives up
    for fold in (f for f in held if f and len(f) < len(examples)):
        out = set(fold)
        inner = fit_scorers([e for i, e in enumerate(examples) if i not in out], **params)
        for i in fold:
            e = examples[i]
            loc = localize(e.transcript, e.signals, inner)
            if loc is not None:
                xs.append(calibration_inputs(loc))
                right.append(e.truth is not None and loc.step.n == e.transcript.turns[e.truth].n)
                useful.append(right[-1] or agent_key(loc.step.agent) == e.truth_agent)
        if tick:
            tick(f"calibrate ({source})")
    calibration = fit_calibration(xs, right, source)
    threshold = abstention_threshold([calibration.probability(x) for x in xs], useful)
    return replace(model, calibration=calibration, abstain_below=threshold)


def fits_needed(examples: list[Example]) -> int:
    """How many fits ``fit`` makes (for a progress bar)."""
    return 1 + (
        len({e.group for e in examples}) if len({e.group for e in examples}) >= 2 else CALIBRATION_FOLDS
    )
