"""The target's world: its flags, injected faults, dependency health, and the latency model that makes a
flag change's effect on p95 analytically known.

Latency is log-normal: median ``base_median_ms × m(flags) × latency_factor``, shape ``sigma``; its p95 is
``median × exp(1.6449 σ)``. The flags' multipliers ``m``: flow policy ``aimd`` 0.90 (``static`` 1.0);
routing ``rules`` 0.85 (``default`` 1.0); ``topk_threshold`` adds 0.5% per step above 32 (saves below);
``target_p95`` under 1,000 ms tightens admission, another 0.95. Errors are injected at ``error_rate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from opslab.errors import invalid_from_pydantic

Z95 = 1.6448536269514722


class ControlFlags(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow_policy: Literal["aimd", "static"] = "static"
    target_p95: float = Field(default=1200.0, gt=0)


class RoutingFlags(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["rules", "default"] = "default"
    topk_threshold: int = Field(default=32, ge=1, le=1024)


class Flags(BaseModel):
    model_config = ConfigDict(extra="forbid")
    control: ControlFlags = Field(default_factory=ControlFlags)
    routing: RoutingFlags = Field(default_factory=RoutingFlags)

    def merged(self, patch: dict[str, JsonValue], *, under: str = "") -> Flags:
        """These flags with ``patch`` laid over them section by section (``{"routing": {"mode": "rules"}}``
        changes one flag); a bad value is refused naming its field (prefixed with ``under``, if given)."""
        merged: dict[str, JsonValue] = dict(self.model_dump())
        for key, value in patch.items():
            current = merged.get(key)
            merged[key] = (
                {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
            )
        try:
            return Flags.model_validate(merged)
        except ValidationError as exc:
            prefix = (under,) if under else ()
            raise invalid_from_pydantic(list(exc.errors(include_url=False)), loc_prefix=prefix) from None


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_factor: float = Field(default=1.0, gt=0.0, le=100.0)


class LatencyModel(BaseModel):
    base_median_ms: float = 20.0
    sigma: float = 0.35

    def multiplier(self, flags: Flags) -> float:
        m = 0.90 if flags.control.flow_policy == "aimd" else 1.0
        m *= 0.85 if flags.routing.mode == "rules" else 1.0
        m *= 1.0 + 0.005 * (flags.routing.topk_threshold - 32)
        m *= 0.95 if flags.control.target_p95 < 1000 else 1.0
        return max(m, 0.05)

    def median_ms(self, flags: Flags, faults: Faults) -> float:
        return self.base_median_ms * self.multiplier(flags) * faults.latency_factor

    def p95_ms(self, flags: Flags, faults: Faults) -> float:
        return self.median_ms(flags, faults) * math.exp(Z95 * self.sigma)


@dataclass
class TargetState:
    """One target's mutable state. Each field is replaced whole, never edited in place, so a request reads
    a consistent set of flags while an experiment thread switches them."""

    model: LatencyModel
    rng: np.random.Generator
    flags: Flags = field(default_factory=Flags)
    faults: Faults = field(default_factory=Faults)
    health: dict[str, bool] = field(default_factory=lambda: {"redis": True, "qdrant": True})
    # The experiment the target runs on itself now (announced in its health), or None.
    experiment: dict[str, Any] | None = None

    def draw(self) -> tuple[float, bool]:
        """One request's latency (seconds) and whether it fails, from the model at the current flags."""
        median = self.model.median_ms(self.flags, self.faults)
        delay = float(self.rng.lognormal(math.log(median), self.model.sigma)) / 1000
        return delay, bool(self.rng.random() < self.faults.error_rate)

    def healthy(self) -> bool:
        return all(self.health.values())

    def describe(self) -> dict[str, JsonValue]:
        m, flags, faults = self.model, self.flags, self.faults
        return {
            "flags": flags.model_dump(),
            "faults": faults.model_dump(),
            "median_ms": m.median_ms(flags, faults),
            "p95_ms": m.p95_ms(flags, faults),
            "sigma": m.sigma,
            "multiplier": m.multiplier(flags),
        }
