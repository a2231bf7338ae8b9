"""A trace's spans indexed: by id, their children, what each says, and tokens and cost counted once.

A span's usage counts only when no span below it has any (leaf LLM spans win over an agent span that
repeats their sum). Cost follows the same rule; a span with tokens and no cost of its own is priced from
the price table by its model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from opslab.telemetry.conventions import AGENT_LIKE, MODEL_KINDS, SpanFacts, read_span
from opslab.telemetry.otlp import Span
from opslab.telemetry.prices import PriceTable


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of a span's subtree, counted once (see the module docstring)."""

    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None

    @property
    def any(self) -> bool:
        return self.tokens_in is not None or self.tokens_out is not None or self.cost_usd is not None


@dataclass(slots=True)
class Trace:
    """A trace's spans, indexed: by id, their children, and what each says."""

    spans: dict[str, Span]
    children: dict[str, list[Span]]
    facts: dict[str, SpanFacts]
    prices: PriceTable

    @classmethod
    def of(cls, spans: Iterable[Span], prices: PriceTable) -> Trace:
        by_id = {s.span_id: s for s in spans}
        children: dict[str, list[Span]] = {}
        for s in by_id.values():
            if s.parent_span_id and s.parent_span_id in by_id:
                children.setdefault(s.parent_span_id, []).append(s)
        for kids in children.values():
            kids.sort(key=lambda s: (s.start_ns, s.span_id))
        return cls(by_id, children, {k: read_span(s) for k, s in by_id.items()}, prices)

    def own_usage(self, span_id: str) -> Usage:
        f = self.facts[span_id]
        cost = f.cost_usd
        if cost is None:
            if f.tokens_in is None and f.tokens_out is None:
                return NO_USAGE  # most spans
            if f.kind in MODEL_KINDS or f.model:
                cost = self.prices.cost(f.model, f.tokens_in, f.tokens_out)
        return Usage(f.tokens_in, f.tokens_out, cost)

    def subtree(self, root: Span) -> list[Span]:
        """``root`` and every span below it, depth first in start order (iterative: traces can be deep)."""
        out: list[Span] = []
        stack, seen = [root], set()
        while stack:
            s = stack.pop()
            if s.span_id in seen:
                continue
            seen.add(s.span_id)
            out.append(s)
            stack.extend(reversed(self.children.get(s.span_id, [])))
        return out

    def usage(self, root: Span, members: list[Span] | None = None) -> dict[str, Usage]:
        """Each span of ``root``'s subtree (``members``, when the caller has it) -> its subtree's usage,
        counted once."""
        totals: dict[str, Usage] = {}
        for s in reversed(members if members is not None else self.subtree(root)):  # children first
            own = self.own_usage(s.span_id)
            kids = self.children.get(s.span_id)
            if not kids:
                totals[s.span_id] = own
                continue
            below = [totals[c.span_id] for c in kids if c.span_id in totals]
            counted = [u for u in below if u.any]
            if not counted:
                totals[s.span_id] = own
                continue
            costs = [u.cost_usd for u in counted if u.cost_usd is not None]
            totals[s.span_id] = Usage(
                _sum(u.tokens_in for u in counted),
                _sum(u.tokens_out for u in counted),
                sum(costs) if costs else own.cost_usd,
            )
        return totals

    def run_roots(self) -> list[Span]:
        """The spans that start runs: top-most agent-like spans, else the trace's top-most spans."""

        def agent_above(s: Span) -> bool:
            seen: set[str] = set()
            parent = s.parent_span_id
            while parent and parent in self.spans and parent not in seen:
                seen.add(parent)
                if self.facts[parent].kind in AGENT_LIKE:
                    return True
                parent = self.spans[parent].parent_span_id
            return False

        roots = [
            s for s in self.spans.values() if self.facts[s.span_id].kind in AGENT_LIKE and not agent_above(s)
        ]
        if not roots:
            roots = [
                s for s in self.spans.values() if not s.parent_span_id or s.parent_span_id not in self.spans
            ]
        return sorted(roots, key=lambda s: (s.start_ns, s.span_id))


NO_USAGE = Usage()


def _sum(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def span_time(ns: int) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, UTC) if ns else None
