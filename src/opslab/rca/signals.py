"""Step signals: what a transcript's steps say about where it went wrong, each one citable evidence.

A signal is a fact about one step that a reader can check in the log: an error in its output, a page
that blocked the agent, a claim of success right after a failure, the first of a run of repeated
actions, an instruction its worker then failed on, a planner admitting it is stuck, an action the
grader did not expect. The scorer (``localize``) weighs them; the report cites them by id
(``ev_sig_<kind>_<step_id>``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from opslab.rca.phrases import (
    ANSWER,
    BLAME,
    CHOICE,
    CONFIRM,
    ENTITY,
    FOUND,
    ID,
    PATTERNS,
    SATISFIED,
    WORD,
    WRITE,
    progress_found,
    satisfied,
    stalled,
)
from opslab.rca.transcript import Transcript, Turn, agent_key, pending_addressees
from opslab.telemetry import ToolCallIn

FAILURE = ("error", "not_found", "blocked")
SNIPPET = 240


@dataclass
class Signal:
    kind: str
    n: int  # the turn's step number
    step_id: str
    strength: float
    snippet: str

    @property
    def evidence_id(self) -> str:
        return f"ev_sig_{self.kind}_{self.step_id}"


def _snippet(text: str, pattern: re.Pattern[str] | None = None) -> str:
    m = pattern.search(text) if pattern else None
    start = max(0, m.start() - 80) if m else 0
    s = " ".join(text[start : start + SNIPPET].split())
    return ("…" if start else "") + s


def _shingles(text: str) -> set[str]:
    words = WORD.findall(re.sub(r"\d+", " ", text.lower()))[:120]
    return {" ".join(words[i : i + 3]) for i in range(max(0, len(words) - 2))}


def _similar(a: set[str], b: set[str]) -> bool:
    return bool(a and b) and len(a & b) / len(a | b) >= 0.6


def _calls_text(turn: Turn) -> str:
    return " ".join(f"{c.tool_name}({json.dumps(c.args_json, sort_keys=True)})" for c in turn.calls)


class _Collector:
    def __init__(self) -> None:
        self.items: list[Signal] = []

    def add(self, kind: str, turn: Turn, strength: float, snippet: str) -> None:
        self.items.append(Signal(kind, turn.n, turn.step_id, round(strength, 3), snippet))


def detect(tr: Transcript) -> list[Signal]:
    """Every signal in the transcript, in step order."""
    out = _Collector()
    turns = tr.turns
    given = tr.run.attributes.get("expected")
    expected: dict[str, object] = given if isinstance(given, dict) else {}
    failing: list[bool] = []
    for t in turns:
        text = t.text if t.role != "system" else ""
        # A tool's output can report a failure; what an agent says (claims, plans, assumptions) it cannot.
        kinds = FAILURE if t.role == "tool" else tuple(PATTERNS)
        hits: dict[str, re.Pattern[str] | None] = {k: PATTERNS[k] for k in kinds if PATTERNS[k].search(text)}
        # A planner's status fields say the same in structure: no progress, a loop, request satisfied.
        if t.role != "tool" and "stall" not in hits and stalled(text):
            hits["stall"] = None
        if t.role != "tool" and "success_claim" not in hits and satisfied(text):
            hits["success_claim"] = None
        if t.role == "user" and t is turns[0]:
            hits = {}
        for kind, pattern in hits.items():
            out.add(kind, t, 1.0, _snippet(text, pattern))
        failed_call = any(c.status != "success" for c in t.calls)
        failing.append(t.failed or failed_call or any(k in hits for k in FAILURE))
    _context(tr, failing, out)
    _outcome(tr, failing, out)
    _loops(turns, out)
    _actions(tr, expected, out)
    if isinstance(expected, dict):
        _answers(tr, expected, out)
        _user_deviation(tr, expected, out)
    return sorted(out.items, key=lambda s: (s.n, s.kind))


def _context(tr: Transcript, failing: list[bool], out: _Collector) -> None:
    turns = tr.turns
    last_failure = max((i for i, f in enumerate(failing) if f), default=-1)
    first_failure = failing.index(True) if True in failing else -1
    if first_failure >= 0:
        t = turns[first_failure]
        out.add("first_failure", t, 1.0, _snippet(t.text))
    if last_failure >= 0 and last_failure >= len(turns) - 3:
        # The run ended right after this failure: it did not recover from it.
        t = turns[last_failure]
        out.add("terminal_failure", t, 1.0, _snippet(t.text, PATTERNS["error"]))
    stall_at = next((i for i, t in enumerate(turns) if stalled(t.text)), None)
    pending = pending_addressees(tr)
    for i, t in enumerate(turns):
        later = turns[i + 1 : i + 5]
        if t.role == "instruction":
            target = [u for u in later if t.addressee and u.key == agent_key(t.addressee)][:1]
            if target and failing[turns.index(target[0])]:
                out.add(
                    "instruction_failed", t, 1.0, f"{t.addressee} then failed: {_snippet(target[0].text)}"
                )
        claims = PATTERNS["success_claim"].search(t.text) or satisfied(t.text)
        if t.role in ("lead", "assistant", "worker", "instruction") and claims:
            seen = [j for j in range(max(0, i - 3), i) if turns[j].key != t.key or turns[j].role == "tool"]
            if any(failing[j] for j in seen):
                out.add("claim_after_failure", t, 1.0, _snippet(t.text, PATTERNS["success_claim"]))
        if stall_at is not None and i < stall_at and t.role in ("instruction", "lead", "worker"):
            gap = stall_at - i
            if gap <= 6:
                out.add(
                    "before_stall", t, 1.0 / gap, f"{gap} step(s) before the planner reported no progress"
                )
        if t.role in ("worker", "assistant", "tool") and i + 1 < len(turns):
            lead = next((u for u in turns[i + 1 : i + 3] if u.role == "lead"), None)
            if lead is not None and BLAME.search(lead.text):
                out.add("blamed_by_lead", t, 1.0, _snippet(lead.text, BLAME))
        reads = t.role == "lead" and i and turns[i - 1].role in ("worker", "tool", "assistant")
        if reads and progress_found(t.text) and stall_at is not None and i < stall_at:
            out.add("progress_then_stall", t, 1.0, _snippet(t.text, FOUND))
        who = pending[i]
        if who and failing[i] and who != t.key:
            # The lead called on an agent, and the failure came before that agent said a word.
            out.add("called_agent_failed", t, 1.0, _snippet(t.text, PATTERNS["error"]))


def _outcome(tr: Transcript, failing: list[bool], out: _Collector) -> None:
    """What a failed run's ending says. The answer it gave was wrong. A lead that declared the request
    answered in a run that failed accepted a wrong answer: it concluded without the evidence it needed.
    A run whose last word is an acting agent's, with no conclusion from anyone, was cut short after that
    turn. A lead building on a worker's report (progress, with something found) is where a misreading
    of that report would enter."""
    if tr.run.status == "success":
        return
    turns = tr.turns
    lead = [t for t in turns if t.role in ("lead", "instruction")]
    declared = next((t for t in lead if satisfied(t.text)), None)
    if declared is not None:
        out.add("false_success", declared, 1.0, _snippet(declared.text, SATISFIED))
    answered = [t for t in turns if t.role != "user" and ANSWER.search(t.text)]
    if answered:
        t = answered[-1]
        out.add("failed_answer", t, 1.0, f"the run's answer, and the run failed: {_snippet(t.text, ANSWER)}")
    last = turns[-1] if turns else None
    ends = any(PATTERNS["end"].search(t.text) or satisfied(t.text) for t in turns[-3:])
    if last is not None and last.role in ("worker", "assistant", "tool") and not ends and not failing[-1]:
        out.add("abrupt_end", last, 1.0, f"the run stopped after this turn: {_snippet(last.text)}")
    for i, t in enumerate(turns):
        reads = t.role == "lead" and i and turns[i - 1].role in ("worker", "tool", "assistant")
        if reads and progress_found(t.text) and not failing[i - 1]:
            out.add("accepted_result", t, 1.0, _snippet(t.text, FOUND))


def _loops(turns: list[Turn], out: _Collector) -> None:
    """The first of three or more near-identical turns by one agent: where a loop began."""
    seen: dict[str, list[tuple[Turn, set[str]]]] = {}
    flagged: set[str] = set()
    for t in turns:
        if t.role in ("user", "system", "tool"):
            continue
        sh = _shingles(t.text + " " + _calls_text(t))
        if len(sh) < 3:
            continue
        history = seen.setdefault(t.key, [])
        same = [u for u, s in history if _similar(s, sh)]
        if len(same) >= 2 and same[0].step_id not in flagged:
            flagged.add(same[0].step_id)
            out.add("loop_start", same[0], min(1.0, len(same) / 4), _snippet(same[0].text))
        history.append((t, sh))


def _actions(tr: Transcript, expected: dict[str, object], out: _Collector) -> None:
    """Consequential tool calls: unconfirmed by the user, or not among the actions the grader expected."""
    wanted = expected.get("actions") if isinstance(expected, dict) else None
    wanted_calls = (
        {
            (str(a.get("name")), json.dumps(a.get("arguments"), sort_keys=True))
            for a in wanted
            if isinstance(a, dict)
        }
        if isinstance(wanted, list)
        else None
    )
    first_unexpected = True
    last_user: Turn | None = None
    for t in tr.turns:
        if t.role == "user":
            last_user = t
        for c in t.calls:
            if not WRITE.match(c.tool_name):
                continue
            out.add("write_action", t, 1.0, _calls_text(t)[:SNIPPET])
            if last_user is not None and not CONFIRM.search(last_user.text):
                out.add("unconfirmed_action", t, 1.0, f"no confirmation in: {_snippet(last_user.text)}")
            if (
                wanted_calls is not None
                and (c.tool_name, json.dumps(c.args_json, sort_keys=True)) not in wanted_calls
            ):
                out.add("unexpected_action", t, 1.0 + first_unexpected, _calls_text(t)[:SNIPPET])
                if first_unexpected:
                    _who_asked(tr, t, c, out)
                first_unexpected = False
    if wanted_calls is not None and first_unexpected:
        writes = [a for a in wanted_calls if WRITE.match(a[0])]
        done = {(c.tool_name, json.dumps(c.args_json, sort_keys=True)) for t in tr.turns for c in t.calls}
        if any(w not in done for w in writes):
            # An expected action never happened: the agent stopped short. The last acting turn is where.
            acting = [t for t in tr.turns if t.role in ("assistant", "worker")]
            if acting:
                out.add("missing_action", acting[-1], 1.0, "an expected action was never taken")


def _who_asked(tr: Transcript, action: Turn, call: ToolCallIn, out: _Collector) -> None:
    """Whether the user dictated an unexpected action: named its specifics, or chose the option."""
    ids = set(ID.findall(json.dumps(call.args_json)))
    users = [u for u in tr.turns[: tr.turns.index(action)] if u.role == "user"][1:]
    named = [u for u in users if any(i in u.text for i in ids)]
    if named:
        out.add("user_directed", named[-1], 1.0, f"asked for {call.tool_name}: {_snippet(named[-1].text)}")
        return
    chose = [u for u in users[-3:] if CHOICE.search(u.text)]
    if chose:
        out.add("user_choice", chose[-1], 1.0, _snippet(chose[-1].text, CHOICE))


def _answers(tr: Transcript, expected: dict[str, object], out: _Collector) -> None:
    """An answer that states a value of the expected kind but not the expected value."""
    outputs = [str(o).strip() for o in expected.get("outputs") or [] if str(o).strip()]  # type: ignore[attr-defined]
    if not outputs:
        return
    acting = [t for t in tr.turns if t.role in ("assistant", "worker") and t.text and not t.calls]
    if any(o.lower() in t.text.lower() for o in outputs for t in acting):
        return
    numeric = all(re.fullmatch(r"[\d.,]+", o) for o in outputs)
    for t in acting:
        if numeric and re.search(r"(?<![#\w])\d{1,4}(?![\w-])", t.text):
            out.add("answer_mismatch", t, 1.0, _snippet(t.text))
            return


def _user_deviation(tr: Transcript, expected: dict[str, object], out: _Collector) -> None:
    """A simulated user asking for specifics its instructions never gave: values it made up or chose."""
    instruction = str(expected.get("instruction") or "")
    if not instruction:
        return
    known = {m.lower().strip("#*\"'") for m in ENTITY.findall(instruction)}
    words = set(WORD.findall(instruction.lower()))
    said: set[str] = set()
    users = [t for t in tr.turns if t.role == "user"]
    for t in tr.turns:
        if t.role != "user":
            said |= {m.lower().strip("#*\"'") for m in ENTITY.findall(t.text)}
            continue
        if t is users[0]:
            continue
        ents = {m.lower().strip("#*\"'") for m in ENTITY.findall(t.text)}
        novel = [e for e in ents if e not in known and e not in said]
        new_words = set(WORD.findall(t.text.lower())) - words
        share = len(new_words) / max(1, len(set(WORD.findall(t.text.lower()))))
        if novel:
            out.add("user_deviation", t, min(1.0, 0.5 * len(novel) + share), _snippet(t.text))
