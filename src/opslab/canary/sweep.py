"""`opslab canary sweep`: Bayesian optimisation over the flag space (Optuna's TPE, seeded), each point
a judged canary against the current flags.

Safety is the canary's own: every trial restores the baseline and applies nothing. The best PASS is
then re-run as a confirmation canary (the best of many noisy measurements flatters itself), and only
that run, if it passes again, applies its flags.

The objective is the trial's ΔP95 (minimised). A trial that was not measured, stopped early or broke
the error-rate threshold scores ``PENALTY`` plus its error rate, so TPE learns to avoid that region.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opslab.canary.agent import run_canary
from opslab.canary.execute import WindowRunner
from opslab.canary.loadgen import run_window
from opslab.canary.plan import Experiment, Plan, read_yaml
from opslab.canary.summary import pct
from opslab.canary.target import TargetClient
from opslab.errors import InvalidInput, invalid_from_pydantic

PENALTY = 100.0
SWEEP_REPORT = "CANARY_SWEEP.md"
INT_PARAMS = {"topk_threshold"}
FLOAT_PARAMS = {"target_p95"}
CHOICE_PARAMS = {"flow_policy", "routing_mode"}
SweepProgress = Callable[[int, int, str], None]


class ParamSpec(BaseModel):
    """``{choices: [...]}`` or a range ``{low, high, step?, log?}``."""

    model_config = ConfigDict(extra="forbid")
    choices: list[Any] | None = Field(default=None, min_length=1)
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


def _suggest(trial: Any, name: str, spec: ParamSpec) -> Any:
    if spec.choices is not None:
        return trial.suggest_categorical(name, spec.choices)
    assert spec.low is not None and spec.high is not None
    if name in INT_PARAMS:
        step = int(spec.step or 1)
        return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)


def objective(result: dict[str, Any], max_error_rate: float) -> float:
    error = float(result.get("error_rate_pct") or 0.0)
    if not result.get("measured") or result.get("early_stop") or error >= max_error_rate:
        return PENALTY + error
    return float(result["delta_p95_pct"])


def run_sweep(
    plan: Plan,
    space: Space,
    target: TargetClient,
    *,
    trials: int,
    reports_dir: Path,
    history_path: Path,
    time_budget: float | None = None,
    progress: SweepProgress | None = None,
    cancel: threading.Event | None = None,
    window: WindowRunner = run_window,
) -> dict[str, Any]:
    import optuna  # a second of imports: only for sweeps

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cancel = cancel or threading.Event()
    budget = time_budget if time_budget is not None else plan.time_budget * (trials + 1)
    started = time.monotonic()
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=plan.seed, n_startup_trials=max(2, min(10, trials // 3))),
    )
    rows: list[dict[str, Any]] = []
    stopped: str | None = None
    for n in range(1, trials + 1):
        if cancel.is_set():
            stopped = "cancelled"
            break
        if time.monotonic() - started + plan.planned_seconds() > budget:
            stopped = f"time budget of {budget:g}s would be exceeded"
            break
        trial = study.ask()
        values = {name: _suggest(trial, name, spec) for name, spec in space.params.items()}
        trial_plan = _plan_with(plan, values, seed=plan.seed + n)
        if progress:
            progress(n - 1, trials, f"trial {n}: {values}")
        r = run_canary(
            trial_plan,
            target,
            reports_dir=reports_dir / "sweep" / f"trial_{n}",
            history_path=history_path,
            cancel=cancel,
            window=window,
            apply_on_pass=False,
            labels={"sweep_trial": n},
        )
        score = objective(r, plan.thresholds.max_error_rate)
        study.tell(trial, score)
        rows.append(_row(n, values, r, score))
        if progress:
            progress(n, trials, f"trial {n}: {r['decision']} ΔP95 {_delta(r.get('delta_p95_pct'))}")
        if r.get("blocked"):
            stopped = f"blocked by the health gate: {r['reason']}"
            break
    passes = [row for row in rows if row["decision"] == "PASS"]
    best = min(passes, key=lambda row: row["delta_p95_pct"]) if passes else None
    confirmation: dict[str, Any] | None = None
    if best and not cancel.is_set():
        if progress:
            progress(len(rows), trials, f"confirming trial {best['trial']}: {best['params']}")
        r = run_canary(
            _plan_with(plan, best["params"], seed=plan.seed),
            target,
            reports_dir=reports_dir,
            history_path=history_path,
            cancel=cancel,
            window=window,
            labels={"sweep_confirmation_of": best["trial"]},
        )
        confirmation = _row(0, best["params"], r, objective(r, plan.thresholds.max_error_rate))
        confirmation["applied"] = bool(r.get("applied"))
    applied = bool(best and confirmation and confirmation["applied"])
    result = {
        "trials": rows,
        "best": best,
        "confirmation": confirmation,
        "applied": applied,
        "applied_flags": r["candidate_flags"] if applied else None,
        "stopped": stopped,
        "seed": plan.seed,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / SWEEP_REPORT).write_text(render_sweep(plan, space, result))
    result["report_path"] = str(reports_dir / SWEEP_REPORT)
    return result


def _plan_with(plan: Plan, values: dict[str, Any], *, seed: int) -> Plan:
    experiment = Experiment.model_validate({**plan.experiment.model_dump(), **values})
    return plan.model_copy(update={"experiment": experiment, "seed": seed})


def _row(n: int, values: dict[str, Any], r: dict[str, Any], score: float) -> dict[str, Any]:
    return {
        "trial": n,
        "params": values,
        "decision": r["decision"],
        "reason": r.get("reason"),
        "delta_p95_pct": r.get("delta_p95_pct"),
        "delta_p95_ci": r.get("delta_p95_ci"),
        "error_rate_pct": r.get("error_rate_pct"),
        "objective": score,
        "applied": False,
    }


def _delta(value: float | None) -> str:
    return pct(value, "+.1f")


def render_sweep(plan: Plan, space: Space, result: dict[str, Any]) -> str:
    lines = [
        "# Canary sweep",
        "",
        f"Target {plan.target.base_url}; {len(result['trials'])} trial(s), TPE seed {result['seed']}; "
        f"each trial {plan.experiment.rounds} ABAB round(s) of {plan.experiment.window_sec:g}s at "
        f"{plan.experiment.qps:g} QPS; objective ΔP95 (lower is better).",
        "",
        "Space: " + ", ".join(f"`{k}` {v.model_dump(exclude_none=True)}" for k, v in space.params.items()),
        "",
        "| trial | params | decision | ΔP95 | 95% CI | errors |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["trials"]:
        ci = row.get("delta_p95_ci")
        ci_text = f"{ci[0]:+.1f} .. {ci[1]:+.1f}" if ci else "n/a"
        lines.append(
            f"| {row['trial']} | {_params(row['params'])} | {row['decision']} "
            f"| {_delta(row['delta_p95_pct'])} | {ci_text} | {row['error_rate_pct'] or 0:.2f}% |"
        )
    lines.append("")
    best, confirmation = result["best"], result["confirmation"]
    if result["stopped"]:
        lines += [f"Stopped early: {result['stopped']}.", ""]
    if not best:
        lines.append("No trial passed: nothing applied; the target keeps its current flags.")
    else:
        lines.append(
            f"Best PASS: trial {best['trial']} ({_params(best['params'])}), "
            f"ΔP95 {_delta(best['delta_p95_pct'])}."
        )
        if confirmation is None:
            lines.append("Not confirmed (the sweep was cancelled): nothing applied.")
        else:
            lines.append(
                f"Confirmation run: {confirmation['decision']}, "
                f"ΔP95 {_delta(confirmation['delta_p95_pct'])} — "
                + ("flags applied." if confirmation["applied"] else "nothing applied.")
            )
    return "\n".join(lines) + "\n"


def _params(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
