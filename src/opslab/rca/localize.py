"""The decisive step of a transcript and the agent responsible for it.

Two small conditional-logit scorers (linear models whose scores are softmaxed over the candidates;
fitted by ``opslab.rca.train`` and shipped as ``localizer.json``) do the ranking. The step scorer gives
every turn the probability that it is the decisive one, from the turn's features (``features.py``).
The agent scorer then chooses the responsible agent from the agents' features — their role, the
probability their turns hold, the signals on them — and the decisive step is that agent's most
probable turn. Each feature's contribution (weight × value) is kept as evidence: the ranking explains
itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from opslab.rca.features import (
    AGENT_FEATURES,
    FEATURES,
    agent_features,
    failing_turns,
    features,
    responsible,
)
from opslab.rca.policy import LeadPolicy, attribute
from opslab.rca.signals import Signal
from opslab.rca.transcript import Transcript

# Signals that are only context (where a turn sits), never a claim on their own.
CONTEXT_ONLY = frozenset(
    {"before_stall", "write_action", "end", "success_claim", "replan", "accepted_result"}
)


@dataclass(frozen=True)
class Scorer:
    """A linear scorer over named features; probabilities are a softmax over the candidates."""

    features: tuple[str, ...]
    weights: np.ndarray

    def probabilities(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        z = x @ self.weights
        if mask is not None:
            z = np.where(mask, z, -np.inf)
        z = z - z.max()
        p = np.exp(z)
        return np.asarray(p / p.sum())

    def contributions(self, row: np.ndarray) -> dict[str, float]:
        c = {f: round(float(w * v), 3) for f, w, v in zip(self.features, self.weights, row, strict=True) if v}
        return dict(sorted(c.items(), key=lambda kv: -abs(kv[1])))

    def to_json(self) -> dict[str, float]:
        return {f: round(float(w), 5) for f, w in zip(self.features, self.weights, strict=True)}

    @classmethod
    def from_json(cls, names: tuple[str, ...], weights: dict[str, float]) -> Scorer:
        # A feature added since the file was fitted weighs nothing until it is fitted again.
        return cls(names, np.array([float(weights.get(f, 0.0)) for f in names]))


@dataclass(frozen=True)
class Localizer:
    step: Scorer
    agent: Scorer
    policy: LeadPolicy = field(default_factory=LeadPolicy)
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.meta,
            "lead_policy": self.policy.to_json(),
            "step_weights": self.step.to_json(),
            "agent_weights": self.agent.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Localizer:
        meta = {k: v for k, v in data.items() if not k.endswith("_weights") and k != "lead_policy"}
        return cls(
            Scorer.from_json(FEATURES, data.get("step_weights") or {}),
            Scorer.from_json(AGENT_FEATURES, data.get("agent_weights") or {}),
            LeadPolicy.from_json(data.get("lead_policy")),
            meta,
        )


@cache
def shipped() -> Localizer:
    text = resources.files("opslab.rca").joinpath("localizer.json").read_text()
    return Localizer.from_json(json.loads(text))


def candidates(tr: Transcript) -> np.ndarray:
    """Turns that can be decisive: not the system prompt, not the task as first stated."""
    return np.array(
        [t.role != "system" and not (i == 0 and t.role == "user") for i, t in enumerate(tr.turns)]
    )


@dataclass
class Ranked:
    n: int
    step_id: str
    agent: str
    probability: float


@dataclass
class Localized:
    step: Ranked
    agent_probability: float
    agent_rule: str | None  # the role rule that named the agent, if one did
    ranking: list[Ranked]  # the most probable turns, best first
    contributions: dict[str, float]  # the decisive step's features, weight × value
    agent_contributions: dict[str, float]
    claims: list[Signal]  # signals that support a claim at all (none: abstain)
    agent_evidence: list[Signal] = field(default_factory=list)  # the signals the agent's rule stands on

    @property
    def confidence(self) -> float:
        """The step scorer's probability that the decisive step is this one."""
        return self.step.probability


def role_rule(keys: list[str], ax: np.ndarray) -> tuple[int, str] | None:
    """A user who dictated or chose the action that went wrong answers for it."""
    col = {name: ax[:, i] for i, name in enumerate(AGENT_FEATURES)}
    for a in range(len(keys)):
        if col["agent_user"][a] and (col["has_user_directed"][a] or col["has_user_choice"][a]):
            return a, "the user dictated the action that went wrong"
    return None


def localize(tr: Transcript, signals: list[Signal], model: Localizer | None = None) -> Localized | None:
    """The decisive step and responsible agent, or None when no turn could be decisive."""
    model = model or shipped()
    mask = candidates(tr)
    if not mask.any():
        return None
    x = features(tr, signals)
    p = model.step.probabilities(x, mask)
    keys, of, ax = agent_features(tr, signals, p, mask)
    pa = model.agent.probabilities(ax)
    ruled = role_rule(keys, ax)
    cited: tuple[Signal, ...] = ()
    if ruled is None:
        # A run with a lead: the lead policy names the agent (``policy.py``).
        att = attribute(tr, signals, model.policy)
        if att is not None and att.agent in keys:
            ruled, cited = (keys.index(att.agent), att.rule), att.evidence
    agent, rule = ruled if ruled else (int(np.argmax(pa)), None)
    best = max((i for i in range(len(p)) if of[i] == agent), key=lambda i: p[i])
    failing = failing_turns(tr, signals)
    order = sorted((i for i in range(len(p)) if mask[i]), key=lambda i: -p[i])

    def ranked(i: int) -> Ranked:
        t = tr.turns[i]
        return Ranked(
            t.n, t.step_id, tr.display(responsible(t, failing[i])) or t.agent, round(float(p[i]), 4)
        )

    return Localized(
        step=ranked(best),
        agent_probability=round(float(pa[agent]), 4),
        agent_rule=rule,
        ranking=[ranked(i) for i in order[:5]],
        contributions=model.step.contributions(x[best]),
        agent_contributions=model.agent.contributions(ax[agent]),
        claims=[s for s in signals if s.kind not in CONTEXT_ONLY],
        agent_evidence=list(cited),
    )
