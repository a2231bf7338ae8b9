"""A trial on a worker (``--executor rq``): what `opslab worker` runs for each trial a runner queued.

The worker knows only the run's folder and the trial id: it reads the run as frozen when it started
(``manifest.json``, ``resolved_experiment.json``), so every worker runs exactly the experiment the runner
planned, with the isolation the manifest records. The run's trial context (the project's template and
snapshot) is built once per run in each worker process and reused for every trial it takes.

Trials start from the worker's own environment (the sanitization profile then filters it), as local
trials start from the runner's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from opslab.config import process_environment
from opslab.errors import NotFound
from opslab.lab.artifacts import read_json, read_model
from opslab.lab.config import resolve
from opslab.lab.isolation import plan_of, preflight
from opslab.lab.plan import Trial, expand_trials
from opslab.lab.records import Manifest
from opslab.lab.trial import TrialContext, run_trial_written

CACHED_RUNS = 4

_lock = threading.Lock()
_runs: OrderedDict[str, tuple[TrialContext, dict[str, Trial]]] = OrderedDict()


def perform_trial(
    run_dir: str,
    trial_id: str,
    first_attempt: str,
    *,
    attempt: int = 1,
    cancelled: threading.Event | None = None,
) -> str:
    """Run trial ``trial_id`` of the run at ``run_dir``; its outcome. ``first_attempt`` is the trial's
    attempt number when it was queued, ``attempt`` the task's (2 when a lost worker's task runs again).
    A trial whose task is ``cancelled`` (its runner stopped) writes no record: ``TrialAbandoned``, as a
    local pool's stopped trial."""
    ctx, trials = _run(run_dir)
    trial = trials.get(trial_id)
    if trial is None:
        raise NotFound(f"no trial {trial_id!r} in run {run_dir}", details={"trial_id": trial_id})
    return run_trial_written(ctx, trial, attempt=int(first_attempt) + attempt - 1, abandoned=cancelled)[0]


def _run(run_dir: str) -> tuple[TrialContext, dict[str, Trial]]:
    with _lock:
        if run_dir in _runs:
            _runs.move_to_end(run_dir)
            return _runs[run_dir]
        path = Path(run_dir)
        manifest = read_model(path / "manifest.json", Manifest)
        resolved = resolve(Path(manifest.experiment_path), read_json(path / "resolved_experiment.json"))
        plan = plan_of(resolved, force_container=manifest.isolation.sandbox == "container")
        preflight(plan)
        # The worker's harnesses die with it (PR_SET_PDEATHSIG): a killed worker leaves none running on.
        ctx = TrialContext(resolved, path, dict(process_environment()), tie_to_runner=True, isolation=plan)
        entry = ctx, {t.trial_id: t for t in expand_trials(resolved)}
        _runs[run_dir] = entry
        while len(_runs) > CACHED_RUNS:
            _runs.popitem(last=False)
        return entry
