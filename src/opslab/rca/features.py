"""Features of a transcript's turns and agents, for the localiser's two scorers.

A turn's features: its author's role, where it sits in the run (early, last, first of its role, just
after an observation, after trouble), and the step signals on it and around it. An agent's features:
its role, how much of the step scorer's probability its turns hold, and which signals its turns carry.
"""

from __future__ import annotations

import math

import numpy as np

from opslab.rca.signals import FAILURE, Signal
from opslab.rca.transcript import ROLES, Transcript, Turn, agent_key, next_speaker

SIGNAL_KINDS = (
    "error",
    "not_found",
    "blocked",
    "success_claim",
    "stall",
    "replan",
    "invented",
    "end",
    "first_failure",
    "terminal_failure",
    "instruction_failed",
    "claim_after_failure",
    "before_stall",
    "next_speaker_failed",
    "loop_start",
    "write_action",
    "unconfirmed_action",
    "unexpected_action",
    "missing_action",
    "answer_mismatch",
    "user_deviation",
    "user_directed",
    "user_choice",
    "blamed_by_lead",
    "progress_then_stall",
    "false_success",
    "abrupt_end",
    "accepted_result",
    "failed_answer",
)
# Signals that something had already gone wrong before a turn.
_TROUBLE = frozenset({*FAILURE, "stall", "loop_start", "replan", "claim_after_failure"})
POSITION = (
    "pos_rel",
    "pos_early",
    "is_last",
    "role_first",
    "after_observation",
    "prev_failure",
    "next_failure",
    "prior_trouble",
    "short_text",
)
FEATURES: tuple[str, ...] = (
    *(f"role_{r}" for r in ROLES),
    *POSITION,
    *(f"sig_{k}" for k in SIGNAL_KINDS),
)


def responsible(turn: Turn, failing: bool) -> str:
    """Who answers for a turn: its author, except that an orchestrator's note that the next speaker
    crashed (``Next speaker Assistant`` and a traceback) blames that speaker."""
    who = next_speaker(turn)
    if who and failing and turn.role in ("orchestrator", "instruction"):
        return who
    return turn.agent


def failing_turns(tr: Transcript, signals: list[Signal]) -> list[bool]:
    bad = {s.step_id for s in signals if s.kind in FAILURE}
    return [t.step_id in bad or t.failed for t in tr.turns]


def features(tr: Transcript, signals: list[Signal]) -> np.ndarray:
    turns = tr.turns
    idx = {name: i for i, name in enumerate(FEATURES)}
    x = np.zeros((len(turns), len(FEATURES)))
    by_step: dict[str, list[Signal]] = {}
    for s in signals:
        by_step.setdefault(s.step_id, []).append(s)
    failing = failing_turns(tr, signals)
    seen_roles: set[str] = set()
    trouble = 0
    last = max(1, len(turns) - 1)
    for i, t in enumerate(turns):
        row = x[i]
        row[idx[f"role_{t.role}"]] = 1.0
        row[idx["pos_rel"]] = i / last
        row[idx["pos_early"]] = math.exp(-i / 8)
        row[idx["is_last"]] = float(i == len(turns) - 1)
        row[idx["role_first"]] = float(t.role not in seen_roles)
        seen_roles.add(t.role)
        prev = turns[i - 1] if i else None
        row[idx["after_observation"]] = float(
            prev is not None and prev.role in ("worker", "tool", "assistant")
        )
        row[idx["prev_failure"]] = float(any(failing[max(0, i - 2) : i]))
        row[idx["next_failure"]] = float(any(failing[i + 1 : i + 3]))
        row[idx["prior_trouble"]] = math.log1p(trouble)
        row[idx["short_text"]] = float(len(t.text) < 80)
        trouble += sum(1 for s in by_step.get(t.step_id, ()) if s.kind in _TROUBLE)
        for s in by_step.get(t.step_id, ()):
            row[idx[f"sig_{s.kind}"]] = max(row[idx[f"sig_{s.kind}"]], s.strength)
    return x


AGENT_ROLES = ("orchestrator", "worker", "assistant", "user", "tool")
AGENT_SIGNALS = (
    "failure",
    "blocked",
    "first_failure",
    "terminal_failure",
    "instruction_failed",
    "claim_after_failure",
    "next_speaker_failed",
    "loop_start",
    "invented",
    "unexpected_action",
    "unconfirmed_action",
    "answer_mismatch",
    "user_deviation",
    "user_directed",
    "user_choice",
    "blamed_by_lead",
    "progress_then_stall",
    "false_success",
    "abrupt_end",
    "accepted_result",
)
AGENT_FEATURES: tuple[str, ...] = (
    *(f"agent_{r}" for r in AGENT_ROLES),
    "mass",
    "top_step",
    "share",
    *(f"has_{k}" for k in AGENT_SIGNALS),
)


def agent_role(roles: set[str]) -> str:
    if roles & {"orchestrator", "instruction"}:
        return "orchestrator"
    return next((r for r in AGENT_ROLES if r in roles), "worker")


def agent_features(
    tr: Transcript, signals: list[Signal], p: np.ndarray, mask: np.ndarray
) -> tuple[list[str], list[int], np.ndarray]:
    """The candidate agents (keys), each turn's responsible agent (index into them, -1: none) and X."""
    failing = failing_turns(tr, signals)
    owner = [agent_key(responsible(t, f)) for t, f in zip(tr.turns, failing, strict=True)]
    keys = list(dict.fromkeys(k for k, m in zip(owner, mask, strict=True) if m))
    of = [keys.index(k) if m else -1 for k, m in zip(owner, mask, strict=True)]
    idx = {name: i for i, name in enumerate(AGENT_FEATURES)}
    x = np.zeros((len(keys), len(AGENT_FEATURES)))
    roles: list[set[str]] = [set() for _ in keys]
    top = int(np.argmax(p))
    total = max(1, int(mask.sum()))
    step_of = {t.step_id: i for i, t in enumerate(tr.turns)}
    for i, t in enumerate(tr.turns):
        a = of[i]
        if a < 0:
            continue
        roles[a].add(t.role)
        x[a, idx["mass"]] += p[i]
        x[a, idx["share"]] += 1 / total
        x[a, idx["top_step"]] = max(x[a, idx["top_step"]], float(i == top))
    counts = np.zeros_like(x)
    for s in signals:
        a = of[step_of[s.step_id]]
        if a < 0:
            continue
        for kind in ("failure", s.kind) if s.kind in FAILURE else (s.kind,):
            if f"has_{kind}" in idx:
                counts[a, idx[f"has_{kind}"]] += 1.0
    x += np.log1p(counts)  # how often, with diminishing weight
    for a, r in enumerate(roles):
        x[a, idx[f"agent_{agent_role(r)}"]] = 1.0
    return keys, of, x
