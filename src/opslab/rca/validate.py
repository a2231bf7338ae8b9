"""Honest figures: every run localised by a localiser that never saw it.

- ``cross_validate`` (leave-one-run-out, or k folds) refits the localiser without each fold and scores
  the fold: how well it learns a system;
- ``leave_one_system_out`` fits on every system but one and scores the one left out: how it behaves on
  a system it has never seen, which is what a user meets first;
- ``ablation`` repeats the cross-validation without each signal in turn.

Each refit is calibrated on runs it holds out itself (``train.fit``), never on the runs it is scored on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opslab.rca.evaluate import Figures, Scored, Truth, summarise
from opslab.rca.labels import run_key
from opslab.rca.localize import Localized, localize
from opslab.rca.signals import detect
from opslab.rca.train import Example, example, fit
from opslab.rca.transcript import read_transcript
from opslab.rca.transcript_report import answer_level
from opslab.telemetry import AgentRunIn

Tick = Callable[[str], None]
Predictions = dict[str, Localized | None]


def examples_of(runs: Iterable[AgentRunIn], truth: dict[str, Truth], group: str) -> list[Example]:
    out = []
    for run in runs:
        tid = run_key(run)
        if tid in truth:
            tr = read_transcript(run)
            t = truth[tid]
            out.append(example(tid, group, tr, t.step_number, t.agent, detect(tr)))
    return out


def folds(examples: list[Example], k: int) -> list[list[int]]:
    """k folds of run indices, each dataset spread evenly over them (k >= len: leave-one-out)."""
    out: list[list[int]] = [[] for _ in range(min(k, len(examples)))]
    slot = 0
    for group in sorted({e.group for e in examples}):
        for i, e in enumerate(examples):
            if e.group == group:
                out[slot % len(out)].append(i)
                slot += 1
    return [f for f in out if f]


def cross_validate(examples: list[Example], *, k: int = 0, tick: Tick | None = None) -> Predictions:
    """Each run localised by a localiser fitted without it (k=0: leave-one-out)."""
    out: Predictions = {}
    for fold in folds(examples, k or len(examples)):
        held = set(fold)
        model = fit([e for i, e in enumerate(examples) if i not in held])
        for i in fold:
            e = examples[i]
            out[e.key] = localize(e.transcript, e.signals, model)
        if tick:
            tick("fold")
    return out


def leave_one_system_out(examples: list[Example], held_out: str) -> Predictions:
    """The runs of system ``held_out`` localised by a localiser fitted on the other systems only (and
    calibrated on them only: the held-out system's annotations are never read)."""
    model = fit([e for e in examples if e.group != held_out])
    return {e.key: localize(e.transcript, e.signals, model) for e in examples if e.group == held_out}


def scored(preds: Predictions, examples: list[Example], truth_of: dict[str, Truth]) -> list[Scored]:
    items = []
    for e in examples:
        loc, t = preds.get(e.key), truth_of[e.key]
        answers = loc is not None and not loc.abstains
        items.append(
            Scored(
                trajectory_id=e.key,
                truth_step=t.step_number,
                truth_agent=t.agent,
                predicted_step=loc.step.n if loc and answers else None,
                predicted_agent=loc.step.agent if loc and answers else None,
                confidence=answer_level(loc) if loc and answers else "low",
                probability=loc.confidence if loc else 0.0,
                category="unknown",
            )
        )
    return items


def figures(preds: Predictions, examples: list[Example], truth_of: dict[str, Truth]) -> Figures:
    return summarise(scored(preds, examples, truth_of))


def cross_validated(examples: list[Example], truth_of: dict[str, Truth], k: int = 0) -> Figures:
    return figures(cross_validate(examples, k=k), examples, truth_of)


def without(examples: list[Example], kind: str) -> list[Example]:
    """The examples as if the signal ``kind`` did not exist (for the ablation)."""
    return [
        example(
            e.key,
            e.group,
            e.transcript,
            e.transcript.turns[e.truth].n if e.truth is not None else -1,
            e.truth_agent,
            [s for s in e.signals if s.kind != kind],
        )
        for e in examples
    ]


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
