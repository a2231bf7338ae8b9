"""The localiser's model: two scorers, the lead policy's thresholds and the calibration, as one file.

The shipped model (``localizer.json``, fitted on the AgentRx dev set) is the default; ``opslab rca
train`` writes one fitted to a user's own labelled runs, which ``opslab rca eval --model`` and the
service (``OPSLAB_RCA_MODEL``) load with ``load_localizer``. The file carries ``schema_version``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from opslab.errors import InvalidInput
from opslab.rca.calibrate import INPUTS, Calibration
from opslab.rca.features import AGENT_FEATURES, FEATURES
from opslab.rca.policy import LeadPolicy

MODEL_SCHEMA_VERSION = 2
ABSTAIN_BELOW = 0.05  # a calibrated confidence under this: "insufficient evidence", candidates listed
_PARTS = ("lead_policy", "calibration", "abstain_below", "schema_version")


@dataclass(frozen=True)
class Scorer:
    """A linear scorer over named features; probabilities are a softmax over the candidates."""

    features: tuple[str, ...]
    weights: np.ndarray

    def probabilities(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        z = x @ self.weights
        if mask is not None:
            z = np.where(mask, z, -np.inf)
        z = z - z.max()
        p = np.exp(z)
        return np.asarray(p / p.sum())

    def contributions(self, row: np.ndarray) -> dict[str, float]:
        c = {f: round(float(w * v), 3) for f, w, v in zip(self.features, self.weights, row, strict=True) if v}
        return dict(sorted(c.items(), key=lambda kv: -abs(kv[1])))

    def to_json(self) -> dict[str, float]:
        return {f: round(float(w), 5) for f, w in zip(self.features, self.weights, strict=True)}

    @classmethod
    def from_json(cls, names: tuple[str, ...], weights: dict[str, float]) -> Scorer:
        # A feature added since the file was fitted weighs nothing until it is fitted again.
        return cls(names, np.array([float(weights.get(f, 0.0)) for f in names]))


@dataclass(frozen=True)
class Localizer:
    step: Scorer
    agent: Scorer
    policy: LeadPolicy = field(default_factory=LeadPolicy)
    calibration: Calibration = field(default_factory=lambda: Calibration(np.zeros(len(INPUTS))))
    abstain_below: float = ABSTAIN_BELOW
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": MODEL_SCHEMA_VERSION,
            **self.meta,
            "lead_policy": self.policy.to_json(),
            "calibration": self.calibration.to_json(),
            "abstain_below": self.abstain_below,
            "step_weights": self.step.to_json(),
            "agent_weights": self.agent.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Localizer:
        meta = {k: v for k, v in data.items() if not k.endswith("_weights") and k not in _PARTS}
        return cls(
            Scorer.from_json(FEATURES, data.get("step_weights") or {}),
            Scorer.from_json(AGENT_FEATURES, data.get("agent_weights") or {}),
            LeadPolicy.from_json(data.get("lead_policy")),
            Calibration.from_json(data.get("calibration")),
            float(data.get("abstain_below", ABSTAIN_BELOW)),
            meta,
        )


@cache
def shipped() -> Localizer:
    text = resources.files("opslab.rca").joinpath("localizer.json").read_text()
    return Localizer.from_json(json.loads(text))


def load_localizer(path: Path | None, field: str = "--model") -> Localizer:
    """A model file written by ``opslab rca train``; None: the shipped model. ``field`` names the option
    or setting the path came from, for the error."""
    if path is None:
        return shipped()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput.for_field(field, f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("step_weights"), dict):
        raise InvalidInput.for_field(field, f"{path}: not a localiser model (written by `opslab rca train`)")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > MODEL_SCHEMA_VERSION:
        raise InvalidInput.for_field(
            field, f"{path}: schema_version {version!r}; this opslab reads up to {MODEL_SCHEMA_VERSION}"
        )
    agent = data.get("agent_weights") or {}
    weights = {**data["step_weights"], **(agent if isinstance(agent, dict) else {"agent_weights": agent})}
    bad = [k for k, v in weights.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        raise InvalidInput.for_field(field, f"{path}: weights must be numbers ({', '.join(bad[:3])})")
    return Localizer.from_json(data)
