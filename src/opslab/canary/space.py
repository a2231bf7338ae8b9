"""The flag space a sweep searches: each name a flag of the plan's experiment, with ``choices`` or a
numeric range ``{low, high, step?, log?}``; refused, naming the field, before any load is sent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opslab.canary.plan import Experiment, read_yaml
from opslab.errors import InvalidInput, invalid_from_pydantic

if TYPE_CHECKING:
    import optuna

INT_PARAMS = {"topk_threshold"}
FLOAT_PARAMS = {"target_p95"}
CHOICE_PARAMS = {"flow_policy", "routing_mode"}
# bool first: a smart union would otherwise read `true` as the integer 1.
ParamValue = bool | int | float | str


class ParamSpec(BaseModel):
    """``{choices: [...]}`` or a range ``{low, high, step?, log?}``."""

    model_config = ConfigDict(extra="forbid")
    choices: list[ParamValue] | None = Field(default=None, min_length=1)
    low: float | None = None
    high: float | None = None
    step: float | None = Field(default=None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpec:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None and ranged:
            raise ValueError("give either choices or low/high, not both")
        if self.choices is None:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both low and high")
            if self.low >= self.high:
                raise ValueError("low must be below high")
            if self.log and (self.low <= 0 or self.step is not None):
                raise ValueError("a log range needs low > 0 and no step")
        return self


class Space(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, ParamSpec] = Field(min_length=1)

    def check(self, base: Experiment) -> None:
        """Every name is a flag of the plan, and every value it can take is one the plan accepts."""
        for name, spec in self.params.items():
            field = f"params.{name}"
            if name not in INT_PARAMS | FLOAT_PARAMS | CHOICE_PARAMS:
                allowed = sorted(INT_PARAMS | FLOAT_PARAMS | CHOICE_PARAMS)
                raise InvalidInput.for_field(field, f"not a flag of the plan; one of {allowed}")
            if name in CHOICE_PARAMS and spec.choices is None:
                raise InvalidInput.for_field(field, "this flag takes one of a set of values: give choices")
            if name in INT_PARAMS and spec.choices is None:
                bounds = (spec.low, spec.high, spec.step or 1)
                if not all(float(b or 0).is_integer() for b in bounds):
                    raise InvalidInput.for_field(field, "an integer flag needs integer low, high and step")
            values = spec.choices if spec.choices is not None else [spec.low, spec.high]
            for i, value in enumerate(values):
                if name in INT_PARAMS and isinstance(value, float) and value.is_integer():
                    value = int(value)  # a range's bounds are floats; the flag is an integer
                try:
                    Experiment.model_validate({**base.model_dump(), name: value})
                except ValidationError as exc:
                    where = f"{field}.choices[{i}]" if spec.choices is not None else f"{field}"
                    raise InvalidInput.for_field(where, f"{value!r}: {exc.errors()[0]['msg']}") from None


def load_space(path: Path, base: Experiment) -> Space:
    data = read_yaml(path, "--space")
    if not isinstance(data, dict):
        raise InvalidInput.for_field("--space", "expected a mapping with `params:`")
    try:
        space = Space.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_pydantic(list(exc.errors(include_url=False))) from None
    space.check(base)
    return space


def suggest(trial: optuna.Trial, name: str, spec: ParamSpec) -> ParamValue:
    """The trial's value for one flag."""
    if spec.choices is not None:
        choice = trial.suggest_categorical(name, spec.choices)
        assert choice is not None  # a choice is never None (ParamValue)
        return choice
    assert spec.low is not None and spec.high is not None
    if name in INT_PARAMS:
        step = int(spec.step or 1)
        return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)
