"""Baselines the localiser is measured against, computed in the same run as its figures.

- **majority agent**: always name the held-out system's most common culprit (it reads that system's
  annotations, so it is a ceiling a blind rule could not reach, not a method);
- **first error**: the first error-looking message; blame its speaker, unless it is a tool (a terminal,
  a tool result), then the agent that spoke before it;
- **last speaker**: the last agent to speak before the run ended in failure (tools, users and the system
  prompt are not agents here), at its last turn.

Each answers with a step and an agent, scored like the localiser (``evaluate.summarise``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from opslab.rca.evaluate import Figures, Scored, Truth, summarise
from opslab.rca.transcript import ACTING, Transcript, agent_key
from opslab.telemetry import agent_name

# What "looks like an error" to a reader skimming a log: the 10-line heuristic's whole knowledge.
ERROR_LOOKING = re.compile(
    r"\berror\b|exception|traceback|\bfailed\b|failure|unable to|cannot|can't|could not|not found|invalid|"
    r"denied|forbidden",
    re.I,
)
Answer = tuple[int, str] | None  # (step number, agent)
Baseline = Callable[[Transcript], Answer]


def first_error(tr: Transcript) -> Answer:
    turns = tr.turns
    opening = next((i for i, t in enumerate(turns) if t.role != "system"), 0)
    for i, t in enumerate(turns):
        if i <= opening or t.role == "system" or not ERROR_LOOKING.search(t.text):
            continue
        if t.role != "tool":
            return t.n, t.agent
        caller = next((u for u in reversed(turns[:i]) if u.role in ACTING), None)
        return t.n, caller.agent if caller else t.agent
    return None


def last_speaker(tr: Transcript) -> Answer:
    last = next((t for t in reversed(tr.turns) if t.role in ACTING), None)
    return (last.n, last.agent) if last else None


BASELINES: dict[str, Baseline] = {"first_error": first_error, "last_speaker": last_speaker}


def baseline_figures(
    name: str, runs: dict[str, Transcript], truth: dict[str, Truth], rule: Baseline | None = None
) -> Figures:
    """A baseline's figures over the annotated runs (keys shared by ``runs`` and ``truth``)."""
    answer = rule or BASELINES[name]
    items = []
    for key, t in sorted(truth.items()):
        got = answer(runs[key]) if key in runs else None
        items.append(
            Scored(
                trajectory_id=key,
                truth_step=t.step_number,
                truth_agent=t.agent,
                predicted_step=got[0] if got else None,
                predicted_agent=got[1] if got else None,
                confidence="low",  # a rule says nothing about how sure it is
                category="unknown",
            )
        )
    return summarise(items)


def majority_agent(truth: dict[str, Truth]) -> tuple[str, float]:
    """The most common responsible agent of these runs and the share of runs it is responsible for."""
    counts = Counter(agent_key(agent_name(t.agent)) for t in truth.values())
    if not counts:
        return "", 0.0
    key, n = counts.most_common(1)[0]
    name = next(agent_name(t.agent) for t in truth.values() if agent_key(agent_name(t.agent)) == key)
    return name, round(n / len(truth), 4)
