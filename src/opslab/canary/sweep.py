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

from pydantic import BaseModel

from opslab.canary.agent import run_canary
from opslab.canary.execute import WindowRunner
from opslab.canary.history import HistoryIndex, RunRecord
from opslab.canary.loadgen import measure
from opslab.canary.model import CanaryResult, Final, Flags, Outcome
from opslab.canary.plan import Experiment, Plan
from opslab.canary.secrets import RunSecrets
from opslab.canary.space import ParamValue, Space, suggest
from opslab.canary.summary import pct
from opslab.canary.target import TargetClient

PENALTY = 100.0
SWEEP_REPORT = "CANARY_SWEEP.md"
SweepProgress = Callable[[int, int, str], None]


class SweepTrial(BaseModel):
    """One canary of the sweep (``trial`` 0: the confirmation run)."""

    trial: int
    params: dict[str, ParamValue]
    decision: Final
    reason: str
    delta_p95_pct: float | None
    delta_p95_ci: tuple[float | None, float | None] | None
    error_rate_pct: float | None
    objective: float
    applied: bool = False


class SweepResult(BaseModel):
    trials: list[SweepTrial]
    best: SweepTrial | None
    confirmation: SweepTrial | None
    applied: bool
    applied_flags: Flags | None
    stopped: str | None
    seed: int
    elapsed_s: float
    report_path: str | None = None


def objective(result: Outcome, max_error_rate: float) -> float:
    error = result.error_rate_pct or 0.0
    delta = result.delta_p95_pct
    if not result.measured or result.early_stop or error >= max_error_rate or delta is None:
        return PENALTY + error
    return delta


def run_sweep(
    plan: Plan,
    space: Space,
    target: TargetClient,
    *,
    trials: int,
    reports_dir: Path,
    history_path: Path,
    index: HistoryIndex | None = None,
    time_budget: float | None = None,
    progress: SweepProgress | None = None,
    cancel: threading.Event | None = None,
    window: WindowRunner = measure,
    secrets: RunSecrets | None = None,
) -> SweepResult:
    import optuna  # a second of imports: only for sweeps

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cancel = cancel or threading.Event()
    budget = time_budget if time_budget is not None else plan.time_budget * (trials + 1)
    started = time.monotonic()
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=plan.seed, n_startup_trials=max(2, min(10, trials // 3))),
    )
    rows: list[SweepTrial] = []
    stopped: str | None = None
    for n in range(1, trials + 1):
        if cancel.is_set():
            stopped = "cancelled"
            break
        if time.monotonic() - started + plan.planned_seconds() > budget:
            stopped = f"time budget of {budget:g}s would be exceeded"
            break
        trial = study.ask()
        values = {name: suggest(trial, name, spec) for name, spec in space.params.items()}
        if progress:
            progress(n - 1, trials, f"trial {n}: {values}")
        r = run_canary(
            _plan_with(plan, values, seed=plan.seed + n),
            target,
            reports_dir=reports_dir / "sweep" / f"trial_{n}",
            history_path=history_path,
            index=index,
            cancel=cancel,
            window=window,
            secrets=secrets,
            apply_on_pass=False,
            sweep_trial=n,
        )
        row = _row(n, values, r, objective(r, plan.thresholds.max_error_rate))
        study.tell(trial, row.objective)
        rows.append(row)
        if progress:
            progress(n, trials, f"trial {n}: {r.decision} ΔP95 {pct(row.delta_p95_pct, '+.1f')}")
        if r.blocked:
            stopped = f"blocked by the health gate: {r.reason}"
            break
    passes = [row for row in rows if row.decision == "PASS" and row.delta_p95_pct is not None]
    best = min(passes, key=lambda row: row.delta_p95_pct or 0.0) if passes else None
    confirmation: SweepTrial | None = None
    applied_flags: Flags | None = None
    if best and not cancel.is_set():
        if progress:
            progress(len(rows), trials, f"confirming trial {best.trial}: {best.params}")
        r = run_canary(
            _plan_with(plan, best.params, seed=plan.seed),
            target,
            reports_dir=reports_dir,
            history_path=history_path,
            index=index,
            cancel=cancel,
            window=window,
            secrets=secrets,
            sweep_confirmation_of=best.trial,
        )
        confirmation = _row(0, best.params, r, objective(r, plan.thresholds.max_error_rate))
        confirmation.applied = r.applied
        applied_flags = r.candidate_flags if r.applied else None
    result = SweepResult(
        trials=rows,
        best=best,
        confirmation=confirmation,
        applied=applied_flags is not None,
        applied_flags=applied_flags,
        stopped=stopped,
        seed=plan.seed,
        elapsed_s=round(time.monotonic() - started, 1),
    )
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / SWEEP_REPORT).write_text(render_sweep(plan, space, result))
    result.report_path = str(reports_dir / SWEEP_REPORT)
    return result


def _plan_with(plan: Plan, values: dict[str, ParamValue], *, seed: int) -> Plan:
    experiment = Experiment.model_validate({**plan.experiment.model_dump(), **values})
    return plan.model_copy(update={"experiment": experiment, "seed": seed})


def _row(n: int, values: dict[str, ParamValue], r: CanaryResult, score: float) -> SweepTrial:
    record = RunRecord.of(r)  # NaN statistics as None, as in the history
    return SweepTrial(
        trial=n,
        params=values,
        decision=r.decision,
        reason=r.reason,
        delta_p95_pct=record.delta_p95_pct,
        delta_p95_ci=record.delta_p95_ci,
        error_rate_pct=record.error_rate_pct,
        objective=score,
    )


def render_sweep(plan: Plan, space: Space, result: SweepResult) -> str:
    e = plan.experiment
    lines = [
        "# Canary sweep",
        "",
        f"Target {plan.target.base_url}; {len(result.trials)} trial(s), TPE seed {result.seed}; "
        f"each trial {e.rounds} ABAB round(s) of {e.window_sec:g}s at {e.qps:g} QPS; objective ΔP95 "
        "(lower is better).",
        "",
        "Space: " + ", ".join(f"`{k}` {v.model_dump(exclude_none=True)}" for k, v in space.params.items()),
        "",
        "| trial | params | decision | ΔP95 | 95% CI | errors |",
        "|---|---|---|---|---|---|",
    ]
    for row in result.trials:
        lines.append(
            f"| {row.trial} | {_params(row.params)} | {row.decision} | {pct(row.delta_p95_pct, '+.1f')} "
            f"| {_ci(row.delta_p95_ci)} | {row.error_rate_pct or 0:.2f}% |"
        )
    lines.append("")
    best, confirmation = result.best, result.confirmation
    if result.stopped:
        lines += [f"Stopped early: {result.stopped}.", ""]
    if not best:
        lines.append("No trial passed: nothing applied; the target keeps its current flags.")
        return "\n".join(lines) + "\n"
    lines.append(
        f"Best PASS: trial {best.trial} ({_params(best.params)}), ΔP95 {pct(best.delta_p95_pct, '+.1f')}."
    )
    if confirmation is None:
        lines.append("Not confirmed (the sweep was cancelled): nothing applied.")
    else:
        lines.append(
            f"Confirmation run: {confirmation.decision}, ΔP95 {pct(confirmation.delta_p95_pct, '+.1f')} — "
            + ("flags applied." if confirmation.applied else "nothing applied.")
        )
    return "\n".join(lines) + "\n"


def _ci(ci: tuple[float | None, float | None] | None) -> str:
    if ci is None or ci[0] is None or ci[1] is None:
        return "n/a"
    return f"{ci[0]:+.1f} .. {ci[1]:+.1f}"


def _params(values: dict[str, ParamValue]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
