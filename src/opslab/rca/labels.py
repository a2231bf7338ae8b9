"""Annotations of failed runs: which step was decisive and which agent answers for it.

Accepted, whichever format the transcripts are in:

- AgentRx ground truth: a JSON list of ``{trajectory_id, failures: [{failure_id, step_number,
  failed_agent}], root_cause: {failure_id}}`` — the root-cause failure is the truth;
- a plain list: ``[{"trajectory_id" | "run_id", "step" | "step_number", "agent" | "failed_agent"}]``,
  or a mapping ``{run_id: {"step", "agent"}}``;
- labels carried by the runs themselves (``attributes.annotated``: the Who&When importer puts each
  file's ``mistake_step`` and ``mistake_agent`` there; any run may carry ``{"step", "agent"}``).

Steps count from 1 in the run's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opslab.errors import InvalidInput
from opslab.rca.evaluate import Truth
from opslab.telemetry import AgentRunIn

FIELD = "--ground-truth"


def run_key(run: AgentRunIn) -> str:
    """The id annotations use for a run: its dataset's trajectory id when it has one, else its run id."""
    return str(run.attributes.get("trajectory_id", run.run_id))


def load_labels(path: Path, field: str = FIELD) -> dict[str, Truth]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput.for_field(field, f"{path}: {exc}") from None
    if isinstance(data, dict):
        data = [
            {"trajectory_id": k, **v} if isinstance(v, dict) else {"trajectory_id": k}
            for k, v in data.items()
        ]
    if not isinstance(data, list):
        raise InvalidInput.for_field(field, f"{path}: expected a JSON list of annotations (or a mapping)")
    out: dict[str, Truth] = {}
    for i, rec in enumerate(data):
        truth = _agentrx(rec) if isinstance(rec, dict) and "root_cause" in rec else _plain(rec)
        if truth is None:
            raise InvalidInput.for_field(
                f"{field}[{i}]",
                "needs trajectory_id (or run_id), a step (1-based) and an agent, or AgentRx's failures and "
                "root_cause",
            )
        out[truth.trajectory_id] = truth
    return out


def _agentrx(rec: dict[str, Any]) -> Truth | None:
    try:
        root_id = rec["root_cause"]["failure_id"]
        failure = next(f for f in rec["failures"] if str(f["failure_id"]) == str(root_id))
        return Truth(
            trajectory_id=str(rec["trajectory_id"]),
            step_number=int(failure["step_number"]),
            agent=str(failure["failed_agent"]),
        )
    except (KeyError, TypeError, StopIteration, ValueError):
        return None


def _plain(rec: object) -> Truth | None:
    if not isinstance(rec, dict):
        return None
    key = rec.get("trajectory_id", rec.get("run_id"))
    step = rec.get("step", rec.get("step_number"))
    agent = rec.get("agent", rec.get("failed_agent"))
    if key is None or isinstance(step, bool) or not isinstance(step, int | str) or not agent:
        return None
    try:
        n = int(step)
    except ValueError:
        return None
    return Truth(trajectory_id=str(key), step_number=n, agent=str(agent)) if n >= 1 else None


def carried_labels(runs: Iterable[AgentRunIn]) -> dict[str, Truth]:
    """The annotations the runs carry themselves (``attributes.annotated``)."""
    out = {}
    for run in runs:
        given = run.attributes.get("annotated")
        truth = _plain({"trajectory_id": run_key(run), **given}) if isinstance(given, dict) else None
        if truth is not None:
            out[truth.trajectory_id] = truth
    return out
