"""A run read as a transcript: one turn per step, who spoke, in which role, and what they said.

Real multi-agent runs are mostly free text. Localising a failure in them needs to know, for every
step, its author (names normalised: ``Websurfer`` is ``WebSurfer``) and the author's *role*:

- ``user`` — the human or a user simulator; ``system`` — the system prompt;
- ``orchestrator`` — a planner, manager or supervisor thinking aloud (ledgers, plans);
- ``instruction`` — an orchestrator's message addressed to a worker (``Orchestrator (-> WebSurfer)``);
- ``worker`` — one of several acting agents; ``assistant`` — the only acting agent;
- ``tool`` — a tool result or an executor (``ComputerTerminal``), which acts on instructions only.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from opslab.telemetry import AgentRunIn, ToolCallIn

Role = Literal["user", "system", "orchestrator", "instruction", "worker", "assistant", "tool"]
ROLES: tuple[Role, ...] = ("user", "system", "orchestrator", "instruction", "worker", "assistant", "tool")

_USER = re.compile(r"^(user|human|customer|client|user[ _-]?proxy|user[ _-]?simulator)$", re.I)
_SYSTEM = re.compile(r"^(system|developer)$", re.I)
_LEAD = re.compile(r"orchestrat|planner|manager|supervisor|coordinator|router|lead|controller", re.I)
_TOOL = re.compile(r"^(tool|function|ipython|observation|environment)$|terminal|executor|shell|sandbox", re.I)
_ADDRESSED = re.compile(r"\(\s*->\s*([^)]+?)\s*\)|->\s*([A-Za-z][\w -]*)")
_NEXT_SPEAKER = re.compile(r"^\s*next speaker[: ]+([A-Za-z][\w-]*)", re.I)
_STEP_NO = re.compile(r"(\d+)$")


def agent_key(name: str | None) -> str:
    """The identity of an agent name: case, spaces, dashes and underscores do not count."""
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


@dataclass
class Turn:
    n: int  # 1-based step number: the trailing number of ``step-N`` ids, else the position
    step_id: str
    agent: str
    role: Role
    text: str
    addressee: str | None = None
    calls: list[ToolCallIn] = field(default_factory=list)
    failed: bool = False

    @property
    def key(self) -> str:
        return agent_key(self.agent)


@dataclass
class Transcript:
    run: AgentRunIn
    turns: list[Turn]
    names: dict[str, str]  # agent key -> the spelling used most often

    def display(self, agent: str | None) -> str | None:
        return self.names.get(agent_key(agent), agent) if agent else None


def _role(agent: str, step_name: str, acting: int) -> tuple[Role, str | None]:
    if _USER.match(agent):
        return "user", None
    if _SYSTEM.match(agent):
        return "system", None
    if _TOOL.search(agent):
        return "tool", None
    if _LEAD.search(agent):
        m = _ADDRESSED.search(step_name)
        if m:
            return "instruction", (m.group(1) or m.group(2) or "").strip() or None
        return "orchestrator", None
    return ("worker" if acting > 1 else "assistant"), None


def is_transcript(run: AgentRunIn) -> bool:
    """A run whose steps say who acted (a multi-agent or conversational trace), not a bare pipeline."""
    agents = {agent_key(s.agent) for s in run.steps if s.agent}
    return len(agents) >= 2


def read_transcript(run: AgentRunIn) -> Transcript:
    spellings: dict[str, Counter[str]] = {}
    for s in run.steps:
        if s.agent:
            spellings.setdefault(agent_key(s.agent), Counter())[s.agent] += 1
    names = {k: c.most_common(1)[0][0] for k, c in spellings.items()}
    acting = {
        k
        for k, name in names.items()
        if not (_USER.match(name) or _SYSTEM.match(name) or _TOOL.search(name) or _LEAD.search(name))
    }
    led = any(_LEAD.search(name) for name in names.values())
    calls: dict[str, list[ToolCallIn]] = {}
    for c in run.tool_calls:
        if c.step_id:
            calls.setdefault(c.step_id, []).append(c)
    turns: list[Turn] = []
    for pos, s in enumerate(run.steps, start=1):
        m = _STEP_NO.search(s.step_id)
        agent = names.get(agent_key(s.agent), s.agent or run.agent_name)
        role, addressee = _role(agent, s.name or "", 2 if led else len(acting))
        text = "\n".join(
            t for t in (s.output_summary, s.input_summary if not s.output_summary else None) if t
        )
        turns.append(
            Turn(
                n=int(m.group(1)) if m else pos,
                step_id=s.step_id,
                agent=agent,
                role=role,
                text=text,
                addressee=names.get(agent_key(addressee), addressee) if addressee else None,
                calls=calls.get(s.step_id, []),
                failed=s.status == "failure",
            )
        )
    return Transcript(run=run, turns=turns, names=names)


def next_speaker(turn: Turn) -> str | None:
    """``Next speaker Assistant`` in an orchestrator's note names who acts next (and who failed then)."""
    m = _NEXT_SPEAKER.match(turn.text)
    return m.group(1) if m else None
