"""Which kind each metric of a comparison is — from a declaration or from its values, never a default that
would bound a metric it knows nothing about (see ``comparison``'s docstring for the rules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opslab.judge import MetricKind, fits, kind_of

if TYPE_CHECKING:
    from opslab.lab.records import TrialRecord

Kind = MetricKind
Scored = tuple["TrialRecord", dict[str, float]]

PROTOCOL_KINDS: dict[str, Kind] = {"success": "rate", "val_acc": "fraction"}


def metric_kinds(
    trials: Sequence[Scored], metrics: Sequence[str], declared: Mapping[str, Kind] | None = None
) -> tuple[dict[str, Kind], list[str]]:
    """Each metric's kind over every trial compared (see the module docstring), and a warning for each
    declaration its values contradict."""
    kinds: dict[str, Kind] = {}
    warnings: list[str] = []
    for m in metrics:
        values = [v[m] for _, v in trials if m in v]
        said = {**PROTOCOL_KINDS, **(declared or {})}.get(m)
        if m == "success":
            kinds[m] = "rate"
        elif said is not None and fits(said, values):
            kinds[m] = said
        else:
            booleans = any(isinstance(o.metrics.get(m), bool) for o, _ in trials)
            kinds[m] = kind_of(values, booleans=booleans) if said is None else "mean"
            if said is not None:
                bound = "0 or 1" if said == "rate" else "in [0, 1]"
                warnings.append(
                    f"{m} is declared a {said} but not every value is {bound}: compared as a mean"
                )
    return kinds, warnings
