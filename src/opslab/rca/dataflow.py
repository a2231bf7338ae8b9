"""Following values through a run: where each value a tool call was given came from.

A run's values enter it from the user (the run's input, a step's input, a prompt), from tool results and
step outputs, or from nowhere — the model typed them. A value that first appears in a tool call's
arguments, produced by no earlier step, is a candidate cause: when a later call fails using it, the
decisive step is where it entered, not where it failed (``ORD-5513`` passed to ``cancel_order`` when the
search had returned ``ORD-5531``; ``refund`` then fails on ``ORD-5513``).

Only identifier-like values are followed (a run of letters and digits with at least one digit, four
characters or more, or a number of four digits or more): words and small numbers appear everywhere and
prove nothing. The closest earlier value (the same characters in another order, or one or two edits
away) is kept as the likely intended one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opslab.telemetry import AgentRunIn, ToolCallIn, build_timeline

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*[A-Za-z0-9]")
MAX_VALUES = 200  # of one call's arguments


@dataclass(frozen=True)
class Entry:
    """A value that first appears in a tool call's arguments."""

    value: str
    call: ToolCallIn
    nearest: str | None  # the closest value the run had produced before it


def identifiers(value: Any) -> Iterator[str]:
    """The identifier-like values in ``value`` (a JSON value: walked)."""
    stack, seen = [value], 0
    while stack and seen < MAX_VALUES:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int | float):
            text = str(int(v)) if isinstance(v, int) or v.is_integer() else ""
            if len(text.lstrip("-")) >= 4:
                seen += 1
                yield text
        elif isinstance(v, str):
            for token in _TOKEN.findall(v):
                if _id_like(token):
                    seen += 1
                    yield token


def _id_like(token: str) -> bool:
    return (
        len(token) >= 4
        and any(c.isdigit() for c in token)
        and (any(c.isalpha() for c in token) or len(token.strip("-")) >= 4)
    )


def entries(run: AgentRunIn) -> list[Entry]:
    """Every identifier that first appears in a tool call's arguments, in the run's order."""
    seen = _Corpus()
    seen.add(run.input)
    steps = {s.step_id: s for s in run.steps}
    calls = {c.call_id: c for c in run.tool_calls}
    out: list[Entry] = []
    open_step = None  # what a step produced is known after its calls, when the next step starts
    for item in build_timeline(run).items:
        if item.kind == "step" and item.id in steps:
            _produced(seen, open_step)
            open_step = steps[item.id]
            seen.add(open_step.input_summary)
            for m in open_step.input_messages:
                seen.add(m.content)
        elif item.kind == "tool_call" and item.id in calls:
            c = calls[item.id]
            for value in dict.fromkeys(identifiers(c.args_json)):
                if not seen.has(value):
                    out.append(Entry(value, c, seen.nearest(value)))
            seen.add_value(c.args_json)
            seen.add(c.result_summary)
            seen.add(c.error_message)
    return out


def _produced(seen: _Corpus, step: Any) -> None:
    if step is not None:
        seen.add(step.output_summary)
        for m in step.output_messages:
            seen.add(m.content)


class _Corpus:
    """What the run has shown so far: its texts, and the identifiers in them."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.values: set[str] = set()

    def add(self, text: str | None) -> None:
        if text:
            self.texts.append(text)
            self.values.update(identifiers(text))

    def add_value(self, value: Any) -> None:
        self.values.update(identifiers(value))

    def has(self, value: str) -> bool:
        return value in self.values or any(value in t for t in self.texts)

    def nearest(self, value: str) -> str | None:
        best = [v for v in self.values if v != value and _close(v, value)]
        return min(best, key=lambda v: (_distance(v, value), v)) if best else None


def _close(a: str, b: str) -> bool:
    if len(a) != len(b) and abs(len(a) - len(b)) > 1:
        return False
    return sorted(a) == sorted(b) or _distance(a, b) <= max(1, min(2, len(a) // 6))


def _distance(a: str, b: str) -> int:
    """Edit distance, a swap of two neighbours counting one (optimal string alignment)."""
    if abs(len(a) - len(b)) > 2:
        return 3
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            best = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, prev2[j - 2] + 1)
            row.append(best)
        prev2, prev = prev, row
    return prev[-1]
