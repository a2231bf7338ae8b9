"""A run read as a transcript: one turn per step, who spoke, in which role, and what they said.

Real multi-agent runs are mostly free text. Localising a failure in them needs to know, for every
step, its author (names normalised: ``Websurfer`` is ``WebSurfer``) and the author's *role*. Roles come
from the transcript's own structure, never from the names a particular system gives its agents:

- ``user`` — the human or a user simulator, ``system`` — the system prompt, ``tool`` — tool results and
  executors: the chat protocol's own role words (user, human, system, tool, function …), or, for a tool,
  an agent whose every turn reads as program output;
- ``lead`` — the agent that directs the others: it addresses its messages to them (``(-> X)`` in the
  step's name), or the other acting agents speak only after it (a hub);
- ``instruction`` — a lead's message addressed to another agent;
- ``worker`` — one of several acting agents, or an agent a lead directs; ``assistant`` — the only one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from opslab.telemetry import AgentRunIn, ToolCallIn

Role = Literal["user", "system", "lead", "instruction", "worker", "assistant", "tool"]
ROLES: tuple[Role, ...] = ("user", "system", "lead", "instruction", "worker", "assistant", "tool")
ACTING: frozenset[str] = frozenset({"lead", "instruction", "worker", "assistant"})

_USER = re.compile(r"^(user|human|customer|client|user[ _-]?proxy|user[ _-]?simulator)$", re.I)
_SYSTEM = re.compile(r"^(system|developer)$", re.I)
_TOOL = re.compile(
    r"^(tool|tools|function|ipython|observation|environment)$|terminal|executor|interpreter|shell|sandbox",
    re.I,
)
# Program output: what an executor says back.
_OUTPUT = re.compile(
    r"exit ?code|exited with|\bstdout\b|\bstderr\b|Traceback \(most recent call last\)|^\s*\$ |"
    r"execution (succeeded|failed)|no code block",
    re.I | re.M,
)
_ADDRESSED = re.compile(r"\(\s*->\s*([^)]+?)\s*\)|->\s*([A-Za-z][\w -]*)")
_STEP_NO = re.compile(r"(\d+)$")
HUB_SHARE = 0.75  # a hub precedes at least this share of the other acting agents' turns


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
    lead: str | None = None  # the lead's agent key, when one directs the others

    def display(self, agent: str | None) -> str | None:
        return self.names.get(agent_key(agent), agent) if agent else None


def is_transcript(run: AgentRunIn) -> bool:
    """A run whose steps say who acted (a multi-agent or conversational trace), not a bare pipeline."""
    agents = {agent_key(s.agent) for s in run.steps if s.agent}
    return len(agents) >= 2


def _addressee(step_name: str) -> str | None:
    m = _ADDRESSED.search(step_name)
    return (m.group(1) or m.group(2) or "").strip() or None if m else None


def _protocol_roles(names: dict[str, str], texts: dict[str, list[str]]) -> dict[str, Role]:
    """Users, system prompts and tools, by the protocol's role words or by what they say."""
    out: dict[str, Role] = {}
    for k, name in names.items():
        said = texts.get(k, [])
        if _USER.match(name):
            out[k] = "user"
        elif _SYSTEM.match(name):
            out[k] = "system"
        elif _TOOL.search(name) or (
            len(said) >= 2 and sum(bool(_OUTPUT.search(t)) for t in said) >= 0.8 * len(said)
        ):
            out[k] = "tool"
    return out


def find_lead(order: list[str], addressed: Counter[str], acting: set[str]) -> str | None:
    """The agent that directs the others: the one that addresses its messages to other agents, else a
    hub that speaks before (nearly) every turn of two or more other acting agents."""
    if addressed:
        return addressed.most_common(1)[0][0]
    if len(acting) < 3:
        return None
    spoken = [k for k in order if k in acting]
    runs = [k for i, k in enumerate(spoken) if i == 0 or spoken[i - 1] != k]
    handoffs = list(zip(runs, runs[1:], strict=False))
    for hub in sorted(acting):
        others = [cur for _, cur in handoffs if cur != hub]
        led = [cur for prev, cur in handoffs if cur != hub and prev == hub]
        if others and len(set(led)) >= 2 and len(led) >= HUB_SHARE * len(others):
            return hub
    return None


def read_transcript(run: AgentRunIn) -> Transcript:
    spellings: dict[str, Counter[str]] = {}
    texts: dict[str, list[str]] = {}
    for s in run.steps:
        if s.agent:
            spellings.setdefault(agent_key(s.agent), Counter())[s.agent] += 1
            texts.setdefault(agent_key(s.agent), []).append(s.output_summary or s.input_summary or "")
    names = {k: c.most_common(1)[0][0] for k, c in spellings.items()}
    protocol = _protocol_roles(names, texts)
    acting = {k for k in names if k not in protocol}
    order = [agent_key(s.agent or run.agent_name) for s in run.steps]
    addressed: Counter[str] = Counter()
    for s, k in zip(run.steps, order, strict=True):
        to = _addressee(s.name or "")
        if k in acting and to and agent_key(to) != k:
            addressed[k] += 1
    lead = find_lead(order, addressed, acting)
    calls: dict[str, list[ToolCallIn]] = {}
    for c in run.tool_calls:
        if c.step_id:
            calls.setdefault(c.step_id, []).append(c)
    turns: list[Turn] = []
    for pos, (s, k) in enumerate(zip(run.steps, order, strict=True), start=1):
        m = _STEP_NO.search(s.step_id)
        agent = names.get(k, s.agent or run.agent_name)
        to = _addressee(s.name or "") if k == lead else None
        role: Role = protocol.get(k) or (
            ("instruction" if to else "lead")
            if k == lead
            else ("worker" if lead or len(acting) > 1 else "assistant")
        )
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
                addressee=names.get(agent_key(to), to) if to else None,
                calls=calls.get(s.step_id, []),
                failed=s.status == "failure",
            )
        )
    for t in turns:
        # An agent that was addressed but never spoke (it crashed when called) still has a name.
        if t.addressee and agent_key(t.addressee) not in names:
            names[agent_key(t.addressee)] = t.addressee
    return Transcript(run=run, turns=turns, names=names, lead=lead)


def pending_addressees(tr: Transcript) -> list[str | None]:
    """For each turn, the agent a lead last addressed that has not spoken since: a lead's turn that
    fails while it waits for that agent carries that agent's failure (it crashed when called)."""
    out: list[str | None] = []
    waiting: str | None = None
    for t in tr.turns:
        if waiting and t.key == waiting:
            waiting = None
        out.append(waiting if t.role in ("lead", "instruction") else None)
        if t.role == "instruction" and t.addressee:
            waiting = agent_key(t.addressee)
    return out
