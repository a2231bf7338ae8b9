"""The lab's use case: run an experiment, start to finish — what ``opslab lab run`` (and its strict and dev
siblings) do, for the CLI, the API's jobs and a dashboard alike.

``run_experiment`` resolves the experiment (with knob overrides), applies the run mode's network policy,
starts or resumes the run, executes the trials (reporting each finished one as an agent run when a
reporter is given), analyses the run and returns a ``LabRun``. It prints nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from opslab.errors import InvalidInput, PolicyViolation
from opslab.lab.artifacts import read_model
from opslab.lab.commit import WrittenRecords
from opslab.lab.config import Resolved, project_root_of, read_yaml, resolve
from opslab.lab.control import RunStop
from opslab.lab.isolation import IsolationPlan, plan_of, preflight_started
from opslab.lab.knobs import apply_overrides
from opslab.lab.pool import TrialDone
from opslab.lab.preflight import check_harness
from opslab.lab.queued_pool import TrialQueue, check_queueable
from opslab.lab.records import Manifest, Outcome, RunStatus
from opslab.lab.report import ReporterSource, ReportQueue, ReportTally, TrialSource
from opslab.lab.runner import (
    LabProgress,
    LabProgressFn,
    execute,
    find_run,
    own_run,
    prepare_run,
    resolved_for_run,
)
from opslab.lab.services import RunServicesScope
from opslab.lab.setup import run_setup

if TYPE_CHECKING:
    from opslab.lab.finish import RunAnalysis

PREFETCH_JOIN_S = 10.0
RunMode = Literal["run", "run-dev", "run-experiment"]


class VariantResult(BaseModel):
    """One variant's line of the run's table: trials, successes (with a Wilson 95% interval), errors."""

    model_config = ConfigDict(defer_build=True)  # built once a run ends, not as every command starts

    n: int
    successes: int
    errors: int
    success_rate: float | None
    success_ci: tuple[float, float]


class LabRun(BaseModel):
    """A finished lab run, as ``opslab lab run --json`` reports it (less ``variants``, ``comparisons``)."""

    model_config = ConfigDict(defer_build=True)

    run_id: str
    run_dir: Path
    status: RunStatus
    total_trials: int
    outcomes: dict[Outcome, int]
    tables: dict[str, int]
    retried: int
    reported: int = 0  # trials stored as agent runs by the reporter
    report_failures: int = 0
    report_error: str | None = None
    variants: dict[str, VariantResult]
    comparisons: list[dict[str, JsonValue]] = []  # treatment vs baseline, as in analysis/comparison.json

    @classmethod
    def of(
        cls, run_dir: Path, manifest: Manifest, analysis: RunAnalysis, tally: ReportTally | None = None
    ) -> LabRun:
        """The run as analysed (``analyse_run``), with what the reporter did."""
        tally = tally or ReportTally()
        comparison = analysis.comparison
        return cls(
            run_id=run_dir.name,
            run_dir=run_dir,
            status=manifest.status,
            total_trials=len(analysis.outputs),
            outcomes=analysis.outcomes,
            tables=analysis.tables,
            retried=len(manifest.retries),
            reported=tally.reported,
            report_failures=tally.failures,
            report_error=tally.error,
            variants={
                vid: VariantResult.model_validate(v, strict=False)
                for vid, v in comparison["variants"].items()
            },
            comparisons=comparison["comparisons"],
        )

    def envelope(self) -> dict[str, JsonValue]:
        """The ``run`` object of the CLI's ``--json`` envelope."""
        return self.model_dump(mode="json", exclude={"variants", "comparisons"})


def resolve_with_overrides(
    experiment_path: Path, overrides: Path | None, *, require_tasks: bool = True
) -> tuple[Resolved, dict[str, JsonValue]]:
    """The experiment resolved with its knob overrides applied, and the overrides applied."""
    if overrides is None:
        return resolve(experiment_path, require_tasks=require_tasks), {}
    data, applied = apply_overrides(read_yaml(experiment_path), overrides, project_root_of(experiment_path))
    return resolve(experiment_path, data, require_tasks=require_tasks), applied


def effective(mode: RunMode, resolved: Resolved) -> Resolved:
    """The experiment as the run mode runs it: ``run-dev`` forces network ``full`` (the frozen
    ``resolved_experiment.json`` then says so); ``run-experiment`` refuses any network but ``none``."""
    network = resolved.config.runtime.network.mode
    if mode == "run-experiment" and network != "none":
        raise PolicyViolation(
            f"network.mode: run-experiment requires 'none', the experiment says {network!r}",
            details={"field": "runtime.network.mode"},
        )
    if mode == "run-dev" and network != "full":
        config = resolved.config.model_copy(deep=True)
        config.runtime.network.mode = "full"
        return resolved.model_copy(update={"config": config})
    return resolved


def isolation_for(mode: RunMode, resolved: Resolved, *, container: bool = False) -> IsolationPlan:
    """The run's isolation plan, checked on this machine: ``run-dev``, ``run-experiment`` and
    ``--container`` need an image and refuse without one; a plan that cannot be established refuses."""
    forced = container or mode in ("run-dev", "run-experiment")
    plan = plan_of(resolved, force_container=forced, zygote_settings=False)
    # The preflight's probes are processes: they run while this thread reads the settings (whether trials
    # start in zygotes; pydantic-settings takes ~25 ms to load), not after it. A settings error still
    # comes first, as it did when the plan read them.
    checked = preflight_started(plan)
    try:
        plan.read_zygote_settings()
    except BaseException:
        with contextlib.suppress(Exception):
            checked()
        raise
    checked()
    return plan


def run_experiment(
    experiment_path: Path,
    *,
    mode: RunMode = "run",
    overrides: Path | None = None,
    resume: str | None = None,
    retry_errors: bool = False,
    concurrency: int | None = None,
    env_base: Mapping[str, str],
    progress: LabProgressFn | None = None,
    reporter: ReporterSource | None = None,
    container: bool = False,
    setup: str | None = None,
    queue: TrialQueue | None = None,
    stop: RunStop | None = None,
) -> LabRun:
    """Run (or, with ``resume``, continue) the experiment at ``experiment_path``; see the module docstring.

    ``env_base`` is the environment trials start from (the sanitization profile then filters it);
    ``reporter`` receives every trial finished by this call as an agent run; ``container`` runs the
    trials in the configured image (``run-dev`` and ``run-experiment`` always do); ``setup`` is
    ``run-dev``'s command, run once in the container before the trials (see ``setup``); ``queue`` runs
    the trials on workers (``--executor rq``, see ``queued_pool``) instead of this process's pool;
    ``stop``, set from any thread, ends the run as SIGINT does (``RunInterrupted``: the running trials
    stopped, the finished ones kept).
    """
    resolved, applied = resolve_with_overrides(experiment_path, overrides)
    resolved = effective(mode, resolved)
    if setup is not None and mode != "run-dev":
        raise InvalidInput.for_field("--setup", "only run-dev runs a setup command")
    if retry_errors and not resume:
        raise InvalidInput.for_field("--retry-errors", "needs --resume RUN_ID")
    if concurrency is not None and concurrency < 1:
        raise InvalidInput.for_field("concurrency", f"at least 1, got {concurrency}")
    if resume:
        run_dir = find_run(resolved, resume)
        resolved_for_run(run_dir, resolved)
        # A resumed run keeps the sandbox it started with.
        container = (
            container or read_model(run_dir / "manifest.json", Manifest).isolation.sandbox == "container"
        )
    plan = isolation_for(mode, resolved, container=container)
    check_harness(resolved, plan)
    if queue is not None:
        check_queueable(resolved, plan)
        queue.ready()
    if not resume:
        run_dir = prepare_run(resolved, overrides=applied, isolation=plan)
        if setup is not None:
            run_setup(resolved, run_dir, plan, setup, env_base=dict(env_base))
    prefetch = _Prefetch(numpy=_analysis_needs_numpy(resolved))

    def on_progress(p: LabProgress) -> None:
        if progress:
            progress(p)
        if p.message != "starting":
            prefetch.start()  # trials run elsewhere (a queue's workers): import the analysis meanwhile

    reports = None if reporter is None else ReportQueue(reporter, _trial_source(resolved, run_dir))
    written = WrittenRecords()

    def on_trial(done: TrialDone) -> None:
        if done.record is not None:
            written.add(done.trial_id, done.record)
        if reports:
            reports.submit(done)

    try:
        with own_run(run_dir), RunServicesScope(resolved, run_dir, plan, env=env_base) as services:
            manifest = execute(
                resolved,
                run_dir,
                concurrency=concurrency or os.cpu_count() or 1,
                env_base=dict(env_base),
                retry_errors=retry_errors,
                progress=on_progress,
                on_trial=on_trial,
                isolation=services,
                queue=queue,
                stop=stop,
                # Once the workers are forked, this process waits for their sandboxes to start the first
                # trials: the analysis imports then, on a core the trials do not use yet.
                started=prefetch.start,
            )
            from opslab.lab.finish import analyse_run  # NumPy: imported while the trials ran

            analysis = analyse_run(resolved, run_dir, written)
    except KeyboardInterrupt:
        if reports:
            reports.close(wait=False)
        # The interpreter must not shut down under a thread importing a C extension (it can crash).
        prefetch.join(PREFETCH_JOIN_S)
        raise
    except Exception:
        if reports:
            reports.close()  # what finished is still worth reporting
        raise
    tally = reports.close() if reports else ReportTally()
    return LabRun.of(run_dir, manifest, analysis, tally)


def _trial_source(resolved: Resolved, run_dir: Path) -> TrialSource:
    cfg = resolved.config
    return TrialSource(
        run_dir=run_dir,
        experiment_id=cfg.experiment.id,
        harness_command=list(cfg.runtime.harness.command),
        bindings={v.id: dict(v.bindings) for v in cfg.variants.all()},
        with_events=cfg.runtime.harness.integration_level != "cli_basic",
    )


class _Prefetch:
    """Imports the analysis on a thread while the trials run, NumPy too when it will need it. Not SciPy:
    only some intervals need it (imported then); for a run of quick trials its import would be CPU taken
    from them for nothing."""

    def __init__(self, *, numpy: bool) -> None:
        self._thread = threading.Thread(
            target=_import_analysis, args=(numpy,), name="opslab-prefetch", daemon=True
        )

    def start(self) -> None:
        if self._thread.ident is None:
            self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout_s)


def _analysis_needs_numpy(resolved: Resolved) -> bool:
    """Whether the analysis will compute more than success rates (Wilson intervals, pure Python):
    variants to compare, or metrics besides success to estimate."""
    cfg = resolved.config
    metrics = {*cfg.analysis.primary_metrics, *cfg.analysis.secondary_metrics}
    return len(cfg.variants.all()) > 1 or bool(metrics - {"success"})


def _import_analysis(numpy: bool) -> None:
    # At the runner's own priority: every run's analysis needs it, so it costs the same CPU now or later;
    # a niced import was starved by the trials and then made the analysis wait for it at the end.
    from opslab.lab.finish import build_models

    build_models()
    for model in (VariantResult, LabRun):  # the run's result, made once the analysis is done
        model.model_rebuild()
    if numpy:
        import numpy as _  # noqa: F401
