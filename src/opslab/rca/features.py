"""Features of a transcript's turns and agents, for the localiser's two scorers.

They are built to carry to agent systems the localiser was not fitted on. A turn is described by its
author's structural role (the agent that directs the run, an acting agent, a user, a tool), where it
sits relative to the run's first failure, what it does (calls a tool, asks, answers) and the step
signals on it, each normalised by how often that signal fires in the same transcript (a signal on
every other turn says less about each one). Signals are also pooled into families (a failure, a
departure from what was asked, a claim), so that a family's weight learnt on one system's signals
applies to another system's signals of the same kind. Nothing here knows an agent's name.
"""

from __future__ import annotations

import math
import re

import numpy as np

from opslab.rca.signals import FAILURE, Signal
from opslab.rca.transcript import ACTING, Transcript, pending_addressees

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
    "called_agent_failed",
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
# Families: signals that say the same kind of thing, whichever system's wording or structure fired them.
FAMILIES: dict[str, frozenset[str]] = {
    "failure": frozenset(FAILURE),
    "departure": frozenset(
        {
            "invented",
            "unexpected_action",
            "missing_action",
            "answer_mismatch",
            "user_deviation",
            "user_directed",
            "user_choice",
            "unconfirmed_action",
            "claim_after_failure",
        }
    ),
    "conclusion": frozenset({"failed_answer", "false_success", "end"}),
    "trouble_seen": frozenset({"blamed_by_lead", "instruction_failed", "called_agent_failed", "loop_start"}),
}
# What an agent's own turn can get wrong: a failure in its own output, a departure from what was asked.
FAULT = frozenset(
    {
        *FAILURE,
        "invented",
        "unexpected_action",
        "answer_mismatch",
        "missing_action",
        "user_directed",
        "user_choice",
        "claim_after_failure",
        "called_agent_failed",
    }
)
_LIST_ITEM = re.compile(r"^\s*(\d+[.)]|[-*•])\s+\S", re.M)
ROLE_FEATURES = ("role_controller", "role_instruction", "role_actor", "role_user", "role_tool")
POSITION = (
    "is_last",
    "plan",
    "after_observation",
    "before_first_failure",
    "at_first_failure",
    "after_first_failure",
    "prev_failure",
    "next_failure",
    "calls_tool",
    "asks",
    "first_fault",
    "agent_first_fault",
)
FEATURES: tuple[str, ...] = (
    *ROLE_FEATURES,
    *POSITION,
    *(f"fam_{f}" for f in FAMILIES),
    *(f"sig_{k}" for k in SIGNAL_KINDS),
)

# A sign known before any fitting: that a turn went wrong itself never makes it less likely to be the
# decisive one. These weights are fitted with a floor of zero (a system where they never fire, or
# mislead, leaves them at zero rather than teaching the opposite).
NONNEGATIVE = frozenset(
    {"fam_failure", "fam_departure", "first_fault", "agent_first_fault", *(f"sig_{k}" for k in FAULT)}
)


def controller(tr: Transcript) -> str | None:
    """The agent that directs the run: its lead, or else its only acting agent."""
    if tr.lead:
        return tr.lead
    acting = {t.key for t in tr.turns if t.role in ACTING}
    return next(iter(acting)) if len(acting) == 1 else None


def failing_turns(tr: Transcript, signals: list[Signal]) -> list[bool]:
    bad = {s.step_id for s in signals if s.kind in FAILURE}
    return [t.step_id in bad or t.failed for t in tr.turns]


def owners(tr: Transcript, failing: list[bool]) -> list[str]:
    """Who answers for each turn (agent keys): its author, except that a lead's turn that fails while it
    waits for the agent it called carries that agent's failure, and a tool's turn its caller's."""
    pending = pending_addressees(tr)
    out: list[str] = []
    caller: str | None = None
    for t, bad, who in zip(tr.turns, failing, pending, strict=True):
        if who and bad:
            out.append(who)
        elif t.role == "tool" and caller:
            out.append(caller)
        else:
            out.append(t.key)
        if t.role in ACTING:
            caller = t.key
    return out


def features(tr: Transcript, signals: list[Signal]) -> np.ndarray:
    turns = tr.turns
    idx = {name: i for i, name in enumerate(FEATURES)}
    x = np.zeros((len(turns), len(FEATURES)))
    by_step: dict[str, list[Signal]] = {}
    fires: dict[str, set[str]] = {}
    for s in signals:
        by_step.setdefault(s.step_id, []).append(s)
        fires.setdefault(s.kind, set()).add(s.step_id)
    failing = failing_turns(tr, signals)
    first = failing.index(True) if True in failing else len(turns)
    boss = controller(tr)
    faulted: set[str] = set()
    last = max(1, len(turns) - 1)
    for i, t in enumerate(turns):
        row = x[i]
        row[idx["role_controller"]] = float(t.key == boss and t.role in ACTING)
        row[idx["role_instruction"]] = float(t.role == "instruction")
        row[idx["role_actor"]] = float(t.role in ("worker", "assistant"))
        row[idx["role_user"]] = float(t.role == "user")
        row[idx["role_tool"]] = float(t.role == "tool")
        row[idx["is_last"]] = float(i == len(turns) - 1)
        row[idx["plan"]] = float(len(_LIST_ITEM.findall(t.text)) >= 3)
        prev = turns[i - 1] if i else None
        row[idx["after_observation"]] = float(
            prev is not None and prev.role in ("worker", "tool", "assistant")
        )
        row[idx["before_first_failure"]] = float(i < first)
        row[idx["at_first_failure"]] = float(i == first)
        row[idx["after_first_failure"]] = (i - first) / last if i > first else 0.0
        row[idx["prev_failure"]] = float(any(failing[max(0, i - 2) : i]))
        row[idx["next_failure"]] = float(any(failing[i + 1 : i + 3]))
        row[idx["calls_tool"]] = float(bool(t.calls) or "```" in t.text)
        row[idx["asks"]] = float(t.text.rstrip().endswith("?"))
        if t.role != "tool" and any(s.kind in FAULT for s in by_step.get(t.step_id, ())):
            # The first time the run, and this agent, went wrong in its own words or actions.
            row[idx["first_fault"]] = float(not faulted)
            row[idx["agent_first_fault"]] = float(t.key not in faulted)
            faulted.add(t.key)
        for s in by_step.get(t.step_id, ()):
            # A signal firing on many turns of this run says less about each of them.
            v = s.strength / math.sqrt(len(fires[s.kind]))
            row[idx[f"sig_{s.kind}"]] = max(row[idx[f"sig_{s.kind}"]], v)
            for fam, kinds in FAMILIES.items():
                if s.kind in kinds:
                    row[idx[f"fam_{fam}"]] = max(row[idx[f"fam_{fam}"]], v)
    return x


AGENT_ROLES = ("controller", "actor", "user", "tool")
AGENT_SIGNALS = (
    "failure",
    "blocked",
    "first_failure",
    "terminal_failure",
    "instruction_failed",
    "claim_after_failure",
    "called_agent_failed",
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


def agent_features(
    tr: Transcript, signals: list[Signal], p: np.ndarray, mask: np.ndarray
) -> tuple[list[str], list[int], np.ndarray]:
    """The candidate agents (keys), each turn's responsible agent (index into them, -1: none) and X."""
    owner = owners(tr, failing_turns(tr, signals))
    keys = list(dict.fromkeys(k for k, m in zip(owner, mask, strict=True) if m))
    of = [keys.index(k) if m else -1 for k, m in zip(owner, mask, strict=True)]
    idx = {name: i for i, name in enumerate(AGENT_FEATURES)}
    x = np.zeros((len(keys), len(AGENT_FEATURES)))
    role_of = {t.key: t.role for t in tr.turns}
    boss = controller(tr)
    top = int(np.argmax(p))
    total = max(1, int(mask.sum()))
    step_of = {t.step_id: i for i, t in enumerate(tr.turns)}
    for i in range(len(tr.turns)):
        a = of[i]
        if a < 0:
            continue
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
    for a, k in enumerate(keys):
        role = role_of.get(k, "worker")
        if k == boss:
            x[a, idx["agent_controller"]] = 1.0
        if role in ("worker", "assistant"):
            x[a, idx["agent_actor"]] = 1.0
        elif role in ("user", "tool"):
            x[a, idx[f"agent_{role}"]] = 1.0
    return keys, of, x
