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

from dataclasses import dataclass, field

import numpy as np

from opslab.rca.calibrate import inputs
from opslab.rca.features import agent_features, failing_turns, features, owners
from opslab.rca.policy import Attribution, attribute
from opslab.rca.scoring import Localizer, shipped
from opslab.rca.signals import Signal
from opslab.rca.transcript import Transcript

# Signals that are only context (where a turn sits), never a claim on their own.
CONTEXT_ONLY = frozenset(
    {"before_stall", "write_action", "end", "success_claim", "replan", "accepted_result"}
)
# Signals of the run's outcome: its end, its answer, a claim of success. A decisive step that carries
# nothing else is where the failure showed, not evidence of where it began (a wrong fact or plan early
# in the run surfaces in the answer): such an answer is a lead, never a confident finding.
OUTCOME = frozenset(
    {
        "answer_mismatch",
        "failed_answer",
        "end",
        "abrupt_end",
        "success_claim",
        "claim_after_failure",
        "false_success",
    }
)


def candidates(tr: Transcript) -> np.ndarray:
    """Turns that can be decisive: not the system prompt, not the task as first stated (the user's
    words before anyone acted), not a tool's output (a tool reports; the agent that called it decided)."""
    opening = next((i for i, t in enumerate(tr.turns) if t.role != "system"), -1)
    return np.array(
        [
            t.role not in ("system", "tool") and not (i == opening and t.role == "user")
            for i, t in enumerate(tr.turns)
        ]
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
    confidence: float  # calibrated: how likely the decisive step is this one, on runs never fitted on
    abstain_below: float  # below this confidence the localiser abstains
    agent_evidence: list[Signal] = field(default_factory=list)  # the signals the agent's rule stands on
    pinned: bool = False  # a rule pointed at this very turn
    within: float = 1.0  # the share of the chosen agent's step probability this turn holds
    outcome_only: bool = False  # the decisive step carries only outcome and context signals

    @property
    def abstains(self) -> bool:
        """No signal supports a claim, or the answer is too unlikely to be right to be given."""
        return not self.claims or self.confidence < self.abstain_below


def role_rule(tr: Transcript, signals: list[Signal], owner: list[str]) -> Attribution | None:
    """A user who dictated or chose the action that went wrong answers for it, at the turn it did so."""
    step_of = {t.step_id: i for i, t in enumerate(tr.turns)}
    said = [
        s
        for s in signals
        if s.kind in ("user_directed", "user_choice") and tr.turns[step_of[s.step_id]].role == "user"
    ]
    if not said:
        return None
    return Attribution(
        owner[step_of[said[0].step_id]], "the user dictated the action that went wrong", (said[0],), True
    )


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
    owner = owners(tr, failing_turns(tr, signals))
    # Rules first: a user who dictated the action, then, in a run with a lead, the lead policy.
    att = role_rule(tr, signals, owner) or attribute(tr, signals, model.policy)
    if att is not None and att.agent in keys:
        agent, rule, cited = keys.index(att.agent), att.rule, att.evidence
    else:
        agent, rule, cited = int(np.argmax(pa)), None, ()
    mine = [i for i in range(len(p)) if of[i] == agent]
    best = max(mine, key=lambda i: p[i])
    pinned = False
    if att is not None and rule is not None and att.pinpoints:
        # The rule names the turn it stands on: that turn is the decisive one.
        at = {tr.turns[i].step_id: i for i in mine}
        pin = next((at[s.step_id] for s in cited if s.step_id in at), None)
        best, pinned = (pin, True) if pin is not None else (best, False)
    within = float(p[best] / max(1e-12, sum(p[i] for i in mine)))
    on_best = {s.kind for s in signals if s.step_id == tr.turns[best].step_id}
    outcome_only = not pinned and on_best <= OUTCOME | CONTEXT_ONLY
    confidence = model.calibration.probability(inputs(within, pinned))
    order = sorted((i for i in range(len(p)) if mask[i]), key=lambda i: -p[i])

    def ranked(i: int) -> Ranked:
        t = tr.turns[i]
        return Ranked(t.n, t.step_id, tr.display(owner[i]) or t.agent, round(float(p[i]), 4))

    return Localized(
        step=ranked(best),
        agent_probability=round(float(pa[agent]), 4),
        agent_rule=rule,
        ranking=[ranked(i) for i in order[:5]],
        contributions=model.step.contributions(x[best]),
        agent_contributions=model.agent.contributions(ax[agent]),
        claims=[s for s in signals if s.kind not in CONTEXT_ONLY],
        confidence=round(confidence, 4),
        abstain_below=model.abstain_below,
        agent_evidence=list(cited),
        pinned=pinned,
        within=round(within, 4),
        outcome_only=outcome_only,
    )


def calibration_inputs(loc: Localized) -> np.ndarray:
    """What the calibration reads of an answer (``calibrate.inputs``)."""
    return inputs(loc.within, loc.pinned)
