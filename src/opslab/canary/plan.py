"""The canary plan: the seed's YAML plus target, time budget and seed. Refused before anything runs
when malformed or contradictory."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from opslab.errors import InvalidInput, invalid_from_pydantic
from opslab.judge import Thresholds


class _M(BaseModel):
    # Strict: `seed: false` is not 0 and `topk_threshold: 2.0` is not 2 (YAML and JSON give real types);
    # `.inf` (YAML) and `1e999` (JSON) are not numbers a plan can use.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Experiment(_M):
    qps: float = Field(gt=0, le=5000)
    window_sec: float = Field(gt=0, le=3600)
    rounds: int = Field(ge=1, le=100)
    flow_policy: Literal["aimd", "static"]
    target_p95: float = Field(gt=0)
    routing_mode: Literal["rules", "default"]
    topk_threshold: int = Field(ge=1, le=1024)
    warmup_fraction: float = Field(default=0.1, ge=0, lt=1, description="Share of each window discarded.")
    warmup_sec: float | None = Field(
        default=None,
        ge=0,
        le=600,
        description="Load before the first window, discarded (default: a quarter window, ≤ 10 s).",
    )

    def warmup_seconds(self) -> float:
        return self.warmup_sec if self.warmup_sec is not None else min(10.0, self.window_sec / 4)


class ThresholdSpec(_M):
    pass_delta_p95_max: float = -10.0
    edge_delta_p95_max: float = -5.0
    max_error_rate: float = Field(default=1.0, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdSpec:
        if self.pass_delta_p95_max > self.edge_delta_p95_max:
            raise ValueError(
                "pass_delta_p95_max must not be above edge_delta_p95_max (PASS is the stricter bar)"
            )
        return self

    def judge(self) -> Thresholds:
        return Thresholds(self.pass_delta_p95_max, self.edge_delta_p95_max, self.max_error_rate)


class Target(_M):
    base_url: str = "http://127.0.0.1:8100"
    flags_path: str = "/api/flags"
    health_path: str = "/api/lab/config"
    request_path: str = "/api/search?q=canary"
    timeout_s: float = Field(default=5.0, gt=0)
    # mode: report — the target runs the A/B itself and serves the seed's mini report.
    report_path: str = "/api/lab/report?mini=1"
    experiment_path: str | None = Field(
        default="/api/lab/run", description="POSTed to start the target's experiment; null: only read"
    )


class Plan(_M):
    experiment: Experiment
    mode: Literal["load", "report"] = Field(
        default="load",
        description="load: our open-loop load generator runs the ABAB; report: the target runs it and "
        "serves a mini report (the seed's original integration)",
    )
    thresholds: ThresholdSpec = Field(default_factory=ThresholdSpec)
    target: Target = Field(default_factory=Target)
    time_budget: float = Field(default=600, gt=0)
    seed: int = 42
    min_samples_per_arm: int = Field(default=100, ge=1)

    def candidate_flags(self) -> dict[str, JsonValue]:
        """Flags B, in the sandbox's shape (``POST flags_path`` body)."""
        e = self.experiment
        return {
            "control": {"flow_policy": e.flow_policy, "target_p95": e.target_p95},
            "routing": {"mode": e.routing_mode, "topk_threshold": e.topk_threshold},
        }

    def planned_seconds(self) -> float:
        return 2 * self.experiment.rounds * self.experiment.window_sec


def read_yaml(path: Path, option: str) -> object:
    """A YAML file named by a CLI option; errors name the option."""
    if not path.is_file():
        raise InvalidInput.for_field(option, f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInput.for_field(option, f"{path}: not valid YAML: {exc}") from None


def load_plan(path: Path) -> Plan:
    return parse_plan(read_yaml(path, "--config"))


def parse_plan(data: object) -> Plan:
    if not isinstance(data, dict):
        raise InvalidInput.for_field("plan", "expected a YAML mapping")
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_pydantic(list(exc.errors(include_url=False))) from None
