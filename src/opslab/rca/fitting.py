"""The use cases behind ``opslab rca train`` and ``opslab rca eval``: read labelled runs in any supported
format, fit a localiser to them, or score a localiser (the shipped one or a fitted one) on them.

Runs are grouped by ``agent_name`` (the agent system they came from): a localiser fitted on runs of two
or more systems is calibrated leaving one system out, else on held-out folds of the one system.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from opslab.errors import InvalidInput
from opslab.rca.analyze import analyze_run
from opslab.rca.evaluate import EvalResult, Truth, score
from opslab.rca.labels import carried_labels, load_labels, run_key
from opslab.rca.model import RcaReport
from opslab.rca.scoring import Localizer
from opslab.rca.train import Example, fit, fits_needed
from opslab.rca.validate import examples_of
from opslab.telemetry import AgentRunIn, Format, check_semantics, import_runs

Tick = Callable[[str], None]
Enhance = Callable[[AgentRunIn, RcaReport], RcaReport]


@dataclass
class Labelled:
    """Runs and their annotations (by ``labels.run_key``)."""

    fmt: Format
    runs: list[AgentRunIn]
    truth: dict[str, Truth]

    @property
    def unlabelled(self) -> list[str]:
        return [run_key(r) for r in self.runs if run_key(r) not in self.truth]


def read_labelled(fmt: Format, path: Path, ground_truth: Path | None) -> Labelled:
    """The runs at ``path`` and their labels: from ``ground_truth`` when given, else those the runs carry
    (Who&When files, runs with ``attributes.annotated``)."""
    runs = list(import_runs(fmt, path))
    for run in runs:
        check_semantics(run)
    if ground_truth is not None:
        if not ground_truth.is_file():
            raise InvalidInput.for_field("--ground-truth", f"{ground_truth}: no such file")
        truth = load_labels(ground_truth)
    else:
        truth = carried_labels(runs)
        if not truth:
            raise InvalidInput.for_field(
                "--ground-truth", f"the {fmt} runs at {path} carry no labels: pass a label file"
            )
    if not any(run_key(r) in truth for r in runs):
        raise InvalidInput.for_field(
            "--ground-truth", f"no run at {path} has a label (labels name runs by trajectory_id or run_id)"
        )
    return Labelled(fmt, runs, truth)


class TrainSummary(BaseModel):
    format: str
    runs: int
    labelled: int
    fitted_on: int  # labelled runs whose annotated step is a turn the localiser can name
    systems: dict[str, int]
    calibration: str
    abstain_below: float
    out: str


def examples(labelled: Labelled, tick: Tick | None = None) -> list[Example]:
    out: list[Example] = []
    for run in labelled.runs:
        out += examples_of([run], labelled.truth, run.agent_name)
        if tick:
            tick(run.run_id)
    return out


class TrainProgress(Protocol):
    """What training reports as it goes (a progress bar)."""

    def read(self, run_id: str) -> None: ...
    def planned(self, fits: int) -> None: ...
    def fitted(self, what: str) -> None: ...


def train(labelled: Labelled, out: Path, *, progress: TrainProgress | None = None) -> TrainSummary:
    """Fit a localiser to the labelled runs and write it to ``out`` (whole or not at all)."""
    if not out.parent.is_dir():
        raise InvalidInput.for_field("--out", f"{out.parent}: no such folder")
    found = examples(labelled, progress.read if progress else None)
    usable = [e for e in found if e.truth is not None]
    if not usable:
        raise InvalidInput.for_field(
            "--ground-truth", "no labelled run's step is a turn the localiser can name (steps count from 1)"
        )
    if progress:
        progress.planned(fits_needed(found))
    model = fit(found, tick=progress.fitted if progress else None)
    systems = dict(Counter(e.group for e in found))
    data = {**model.to_json(), "format": labelled.fmt, "fitted_on_sets": systems}
    _write(out, data)
    return TrainSummary(
        format=labelled.fmt,
        runs=len(labelled.runs),
        labelled=len(found),
        fitted_on=len(usable),
        systems=systems,
        calibration=model.calibration.source,
        abstain_below=model.abstain_below,
        out=str(out),
    )


def _write(out: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def evaluate(
    labelled: Labelled,
    model: Localizer | None = None,
    *,
    enhance: Enhance | None = None,
    tick: Tick | None = None,
) -> EvalResult:
    """Every run analysed (by ``model``, default the shipped localiser) and scored against its label."""
    reports = {}
    for run in labelled.runs:
        report = analyze_run(run, model=model)
        reports[run_key(run)] = enhance(run, report) if enhance else report
        if tick:
            tick(run.run_id)
    return score(reports, labelled.truth)
