"""The resolved experiment as `opslab lab describe` reports it (the seed's SDK reads `total_trials`).

Describe is the seed's pre-flight check, so the isolation is checked on this machine as a run checks it:
the plan of ``run`` (or ``run --container``) must be establishable, else describe refuses with the error
the run would give. A configured image is checked too (``run --container``, ``run-dev`` and
``run-experiment`` use it): one this machine cannot run is reported (``container_error``), not refused,
when describing ``run``, which runs locally whatever image is configured."""

from __future__ import annotations

import shutil
from typing import Any

from opslab.errors import InvalidInput, OpslabError
from opslab.lab.config import Resolved, load_tasks
from opslab.lab.isolation import IsolationPlan, plan_of, preflight
from opslab.lab.plan import expand_trials
from opslab.lab.runner import isolation_note

IMAGE_USERS = "run --container, run-dev and run-experiment"


def harness_script(command: list[str]) -> str | None:
    """The file the harness command runs: `python ./h.py` -> ./h.py, `python -m a.b` -> a/b.py, `./bin/x`."""
    args = command[1:]
    if "-m" in args and args.index("-m") + 1 < len(args):
        return args[args.index("-m") + 1].replace(".", "/") + ".py"
    for arg in args:
        if not arg.startswith("-") and "{" not in arg:
            return arg
    return command[0] if "/" in command[0] else None


def checked_plan(resolved: Resolved, *, container: bool = False) -> tuple[IsolationPlan, str | None]:
    """The isolation ``run`` (``container``: ``run --container``) would give, checked as the run checks
    it; and, when an image is configured and the local run is described, why the container runs could not
    use it here (None when they could)."""
    plan = plan_of(resolved, force_container=container)
    preflight(plan)
    image_problem = None
    if resolved.config.runtime.sandbox.image and not container:
        try:
            preflight(plan_of(resolved, force_container=True))
        except OpslabError as exc:
            image_problem = f"runtime.sandbox.image (used by {IMAGE_USERS}): {exc.message}"
    return plan, image_problem


def describe(resolved: Resolved, applied: dict[str, Any], *, container: bool = False) -> dict[str, Any]:
    """What `opslab lab describe` shows: the resolved config, the trial plan, the harness as it will run
    (with ``run``, or ``run --container``), after the isolation checks a run makes."""
    plan, container_error = checked_plan(resolved, container=container)
    cfg = resolved.config
    dataset_error = None
    if not resolved.tasks:  # resolved without requiring them: say why there are none
        try:
            load_tasks(resolved.dataset_path, cfg.dataset.limit)
        except InvalidInput as exc:
            dataset_error = exc.message
    command = cfg.runtime.harness.command
    script = harness_script(command)
    script_path = (resolved.project_root / script).resolve() if script else None
    trials = expand_trials(resolved)
    return {
        "experiment_id": cfg.experiment.id,
        "workload_type": cfg.experiment.workload_type,
        "project_root": str(resolved.project_root),
        "dataset_path": str(resolved.dataset_path),
        "dataset_exists": resolved.dataset_path.is_file(),
        "dataset_error": dataset_error,
        "tasks": len(resolved.tasks),
        "variants": [v.id for v in cfg.variants.all()],
        "replications": cfg.design.replications,
        "total_trials": len(trials),
        "harness_command": command,
        "harness_cwd": str(resolved.project_root),
        "harness_script_resolved": str(script_path) if script_path else None,
        "harness_script_exists": bool(script_path and script_path.exists())
        if script_path
        else shutil.which(command[0]) is not None,
        "integration_level": cfg.runtime.harness.integration_level,
        "sanitization_profile": cfg.design.sanitization_profile,
        "network_mode": cfg.runtime.network.mode,
        "allowed_hosts": cfg.runtime.network.allowed_hosts,
        "sandbox_mode": "local" if plan.sandbox == "local" else "container",
        "container_image": cfg.runtime.sandbox.image,
        "container_error": container_error,
        "isolation": isolation_note(resolved, plan).model_dump(mode="json"),
        "overrides": applied,
        "first_trials": [
            t.model_dump(include={"trial_id", "variant_id", "task_id", "replication", "seed"})
            for t in trials[:5]
        ],
    }
