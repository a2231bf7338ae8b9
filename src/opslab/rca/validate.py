"""``opslab rca eval``'s honest figures: cross-validated localisation and the per-signal ablation.

The shipped scorers were fitted on the dev set, so their figures there are in-sample. These refit the
scorers k times, each without one fold of runs, and localise every run with scorers that never saw it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opslab.rca.evaluate import Figures, Truth, same_agent
from opslab.rca.localize import Localized
from opslab.rca.signals import detect
from opslab.rca.train import Example, cross_validate, example, without
from opslab.rca.transcript import read_transcript
from opslab.rca.transcript_report import MEDIUM
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
    n = len(examples)
    exact = near = agent = abstain = confident_wrong = 0
    for e in examples:
        loc, t = preds.get(e.key), truth_of[e.key]
        if loc is None or not loc.claims:
            abstain += 1
            continue
        off = abs(loc.step.n - t.step_number)
        exact += off == 0
        near += off <= 1
        agent += same_agent(loc.step.agent, t.agent)
        confident_wrong += loc.confidence >= MEDIUM and off > 1

    def rate(k: int) -> float:
        return round(k / n, 4) if n else 0.0

    return Figures(
        n=n,
        step_accuracy=rate(exact),
        step_accuracy_pm1=rate(near),
        agent_accuracy=rate(agent),
        insufficient_rate=rate(abstain),
        confident_wrong_rate=rate(confident_wrong),
    )


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
