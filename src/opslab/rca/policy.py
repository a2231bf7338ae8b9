"""Who answers for a failed run that a lead ran: an orchestrator (planner, manager) directing workers.

In such a run the lead plans, instructs and reads its workers' reports, so by default it answers for
the outcome. A worker answers instead when the log says the failure was the worker's own:

1. the lead declared the request satisfied and the run failed: the lead accepted a wrong answer (lead);
2. a guardrail (content filter, bot wall, permission) stopped a worker and the run never recovered,
   before the lead had built on more than ``built_max - 1`` of the workers' reports (that worker);
3. the run stopped short after a worker's turn, with no conclusion from anyone (that worker);
4. the lead reported, again and again (``blame_min`` times or more, ``blame_share`` of all its
   complaints), that one worker did not do what it was asked (that worker);
5. otherwise, the lead.

The three thresholds are fitted (``fit_policy``: the best on the training runs, over a small grid) and
shipped with the localiser; cross-validation refits them with each fold held out.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from opslab.rca.features import failing_turns, owners
from opslab.rca.signals import Signal
from opslab.rca.transcript import Transcript


@dataclass(frozen=True)
class LeadPolicy:
    blame_min: int = 4
    blame_share: float = 0.75
    built_max: int = 2

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> LeadPolicy:
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Attribution:
    agent: str  # agent key
    rule: str  # why, for the report
    evidence: tuple[Signal, ...]  # the signals the rule stands on
    pinpoints: bool = False  # the first of them is on the decisive turn (the rule says where, not only who)


AXES = {"blame_min": (3, 4, 5, 6, 8), "blame_share": (0.0, 0.5, 0.75), "built_max": (1, 2, 3)}
GRID = tuple(
    LeadPolicy(int(n), float(share), int(built))
    for n, share, built in itertools.product(AXES["blame_min"], AXES["blame_share"], AXES["built_max"])
)


def _extremity(p: LeadPolicy) -> float:
    """How far a policy's thresholds sit from the middle of the grid (ties go to the middle)."""
    return sum(abs(axis.index(getattr(p, name)) - (len(axis) - 1) / 2) for name, axis in AXES.items())


def lead_of(tr: Transcript) -> str | None:
    """The lead's agent key: the author of the run's orchestrating turns, if it has workers."""
    workers = {t.key for t in tr.turns if t.role == "worker"}
    return tr.lead if tr.lead and workers else None


@dataclass(frozen=True)
class Facts:
    """What the policy reads from a run with a lead; computed once, whatever the thresholds."""

    lead: str
    declared: Signal | None  # the lead's first "request satisfied"
    built: int  # the workers' reports the lead built on
    stopped: tuple[tuple[str, Signal, Signal], ...]  # (worker, blocked, terminal failure)
    abrupt: tuple[str, Signal] | None
    blamed: tuple[tuple[str, Signal], ...]


def facts(tr: Transcript, signals: list[Signal]) -> Facts | None:
    """The facts of a run with a lead, or None when the run has no lead."""
    lead = lead_of(tr)
    if lead is None:
        return None
    owned = dict(zip((t.step_id for t in tr.turns), owners(tr, failing_turns(tr, signals)), strict=True))

    def owner(s: Signal) -> str:
        return owned[s.step_id]

    of: dict[str, list[Signal]] = {}
    for s in signals:
        of.setdefault(s.kind, []).append(s)
    blocked = {owner(s): s for s in of.get("blocked", ())}
    stopped = tuple(
        (owner(s), blocked[owner(s)], s)
        for s in of.get("terminal_failure", ())
        if owner(s) != lead and owner(s) in blocked
    )
    abrupt = next(((owner(s), s) for s in of.get("abrupt_end", ())), None)
    return Facts(
        lead=lead,
        declared=next(iter(of.get("false_success", ())), None),
        built=len(of.get("accepted_result", ())),
        stopped=stopped,
        abrupt=abrupt,
        blamed=tuple((owner(s), s) for s in of.get("blamed_by_lead", ())),
    )


def decide(f: Facts, policy: LeadPolicy) -> Attribution:
    if f.declared is not None:
        return Attribution(
            f.lead, "the lead declared the request satisfied, and the run failed", (f.declared,)
        )
    if f.stopped and f.built < policy.built_max:
        who, blocked, terminal = f.stopped[0]
        return Attribution(
            who, "a guardrail stopped this agent and the run never recovered", (blocked, terminal), True
        )
    if f.abrupt is not None:
        return Attribution(f.abrupt[0], "the run stopped short after this agent's turn", (f.abrupt[1],), True)
    counts = Counter(who for who, _ in f.blamed)
    if counts:
        who, n = counts.most_common(1)[0]
        if who != f.lead and n >= policy.blame_min and n >= policy.blame_share * len(f.blamed):
            cited = tuple(s for w, s in f.blamed if w == who)
            why = f"the lead reported {n} times that this agent did not do as asked"
            return Attribution(who, why, cited, True)
    return Attribution(f.lead, "the lead directs the run and answers for its outcome", ())


def attribute(tr: Transcript, signals: list[Signal], policy: LeadPolicy) -> Attribution | None:
    """The responsible agent of a run with a lead, or None when the run has no lead."""
    f = facts(tr, signals)
    return decide(f, policy) if f else None


def fit_policy(runs: list[tuple[Transcript, list[Signal], str]]) -> LeadPolicy:
    """The grid's policy that names the annotated agent most often on these runs (ties: the least
    extreme thresholds)."""
    led = [(f, truth) for tr, sig, truth in runs if (f := facts(tr, sig)) is not None]
    # With no led runs every policy ties, and the middle of the grid is taken: no thresholds from nowhere.
    return max(
        GRID, key=lambda p: (sum(1 for f, truth in led if decide(f, p).agent == truth), -_extremity(p))
    )
