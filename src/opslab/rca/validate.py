"""``opslab rca eval``'s honest figures: cross-validated localisation and the per-signal ablation.

The shipped scorers were fitted on the dev set, so their figures there are in-sample. These refit the
scorers k times, each without one fold of runs, and localise every run with scorers that never saw it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opslab.rca.evaluate import Figures, Scored, Truth, summarise
from opslab.rca.localize import Localized
from opslab.rca.signals import detect
from opslab.rca.train import Example, cross_validate, example, without
from opslab.rca.transcript import read_transcript
from opslab.rca.transcript_report import level
from opslab.telemetry import AgentRunIn

Tick = Callable[[str], None]


def examples_of(runs: Iterable[AgentRunIn], truth: dict[str, Truth], group: str) -> list[Example]:
    out = []
    for run in runs:
        tid = str(run.attributes.get("trajectory_id", run.run_id))
        if tid in truth:
            tr = read_transcript(run)
            t = truth[tid]
            out.append(example(tid, group, tr, t.step_number, t.agent, detect(tr)))
    return out


def figures(
    preds: dict[str, Localized | None], examples: list[Example], truth_of: dict[str, Truth]
) -> Figures:
    items = []
    for e in examples:
        loc, t = preds.get(e.key), truth_of[e.key]
        answers = loc is not None and bool(loc.claims)
        items.append(
            Scored(
                trajectory_id=e.key,
                truth_step=t.step_number,
                truth_agent=t.agent,
                predicted_step=loc.step.n if loc and answers else None,
                predicted_agent=loc.step.agent if loc and answers else None,
                confidence=level(loc.confidence) if loc else "low",
                category="unknown",
            )
        )
    return summarise(items)


def cross_validated(examples: list[Example], truth_of: dict[str, Truth], k: int = 0) -> Figures:
    return figures(cross_validate(examples, k=k), examples, truth_of)


def ablation(
    examples: list[Example], truth_of: dict[str, Truth], k: int = 0, tick: Tick | None = None
) -> dict[str, Figures]:
    """Cross-validated figures without each signal that occurs in the examples, one at a time."""
    kinds = sorted({s.kind for e in examples for s in e.signals})
    out = {}
    for kind in kinds:
        if tick:
            tick(kind)
        out[kind] = cross_validated(without(examples, kind), truth_of, k)
    return out
