"""The canary plan: the seed's YAML plus target, metrics, notifications, time budget and seed. Refused
before anything runs when malformed or contradictory, naming every offending field.

The candidate flags are any JSON object (``experiment.flags``); the seed's four keys (``flow_policy``,
``target_p95``, ``routing_mode``, ``topk_threshold``) stay a shorthand for the sandbox's flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, JsonValue, ValidationError, model_validator

from opslab.canary.metrics_plan import MetricsSpec
from opslab.canary.notify import NotifySpec
from opslab.canary.strict import Strict
from opslab.canary.target_plan import Target
from opslab.errors import InvalidInput, invalid_from_pydantic
from opslab.judge import Thresholds

SHORTHAND = ("flow_policy", "target_p95", "routing_mode", "topk_threshold")


class Experiment(Strict):
    qps: float = Field(gt=0, le=5000)
    window_sec: float = Field(gt=0, le=3600)
    rounds: int = Field(ge=1, le=100)
    flags: dict[str, JsonValue] | None = Field(
        default=None, description="The candidate flag document B (any JSON object), written to flags_path."
    )
    flow_policy: Literal["aimd", "static"] | None = None
    target_p95: float | None = Field(default=None, gt=0)
    routing_mode: Literal["rules", "default"] | None = None
    topk_threshold: int | None = Field(default=None, ge=1, le=1024)
    warmup_fraction: float = Field(default=0.1, ge=0, lt=1, description="Share of each window discarded.")
    warmup_sec: float | None = Field(
        default=None,
        ge=0,
        le=600,
        description="Load before the first window, discarded (default: a quarter window, ≤ 10 s).",
    )
    arm_order: Literal["ABBA", "ABAB"] = Field(
        default="ABBA",
        description="ABBA: rounds alternate A-B and B-A, so a drift over the run (a warming cache, a "
        "neighbour's load) falls on both arms alike; ABAB: A first in every round.",
    )

    @model_validator(mode="after")
    def _one_candidate(self) -> Experiment:
        given = [k for k in SHORTHAND if getattr(self, k) is not None]
        if self.flags is not None and given:
            raise ValueError(
                f"give either flags or the sandbox shorthand ({', '.join(SHORTHAND)}), not both: {given[0]}"
            )
        if self.flags is None and len(given) < len(SHORTHAND):
            missing = [k for k in SHORTHAND if k not in given]
            raise ValueError(f"no candidate flags: give flags, or all of {', '.join(missing)}")
        if self.flags == {}:
            raise ValueError("flags is empty: the candidate must change something")
        return self

    def candidate_flags(self) -> dict[str, JsonValue]:
        """Flags B: ``flags`` as given, or the shorthand in the sandbox's shape (its ``POST`` body)."""
        if self.flags is not None:
            return self.flags
        return {
            "control": {"flow_policy": self.flow_policy, "target_p95": self.target_p95},
            "routing": {"mode": self.routing_mode, "topk_threshold": self.topk_threshold},
        }

    def arm(self, window: int) -> Literal["A", "B"]:
        """The arm of the ``window``-th window (0-based): A-B every round, or B-A every other one (ABBA)."""
        first = window % 2 == 0
        if self.arm_order == "ABBA" and (window // 2) % 2 == 1:
            first = not first
        return "A" if first else "B"

    def warmup_seconds(self) -> float:
        return self.warmup_sec if self.warmup_sec is not None else min(10.0, self.window_sec / 4)


class ThresholdSpec(Strict):
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


class Plan(Strict):
    experiment: Experiment
    mode: Literal["load", "report"] = Field(
        default="load",
        description="load: our open-loop load generator runs the ABAB; report: the target runs it and "
        "serves a mini report (the seed's original integration)",
    )
    thresholds: ThresholdSpec = Field(default_factory=ThresholdSpec)
    target: Target = Field(default_factory=Target)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    report_verdict: Literal["stricter", "ours", "target"] = Field(
        default="stricter",
        description="mode: report, when the target's own verdict disagrees with ours: which one wins.",
    )
    notify: NotifySpec | None = None
    time_budget: float = Field(default=600, gt=0)
    seed: int = 42
    min_samples_per_arm: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> Plan:
        if self.mode == "report" and self.metrics.source == "prometheus":
            raise ValueError("mode: report reads the target's own report; metrics.source must be load")
        return self

    def candidate_flags(self) -> dict[str, JsonValue]:
        return self.experiment.candidate_flags()

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
