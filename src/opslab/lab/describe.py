"""The resolved experiment as `opslab lab describe` reports it (the seed's SDK reads `total_trials`)."""

from __future__ import annotations

import shutil
from typing import Any

from opslab.lab.config import Resolved
from opslab.lab.plan import expand_trials
from opslab.lab.runner import isolation_note


def harness_script(command: list[str]) -> str | None:
    """The file the harness command runs: `python ./h.py` -> ./h.py, `python -m a.b` -> a/b.py, `./bin/x`."""
    args = command[1:]
    if "-m" in args and args.index("-m") + 1 < len(args):
        return args[args.index("-m") + 1].replace(".", "/") + ".py"
    for arg in args:
        if not arg.startswith("-") and "{" not in arg:
            return arg
    return command[0] if "/" in command[0] else None


def describe(resolved: Resolved, applied: dict[str, Any]) -> dict[str, Any]:
    """What `opslab lab describe` shows: the resolved config, the trial plan, the harness as it will run."""
    cfg = resolved.config
    command = cfg.runtime.harness.command
    script = harness_script(command)
    script_path = (resolved.project_root / script).resolve() if script else None
    trials = expand_trials(resolved)
    return {
        "experiment_id": cfg.experiment.id,
        "workload_type": cfg.experiment.workload_type,
        "project_root": str(resolved.project_root),
        "dataset_path": str(resolved.dataset_path),
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
        "sandbox_mode": "container" if cfg.runtime.sandbox.image else "local",
        "isolation": isolation_note(resolved).model_dump(mode="json"),
        "overrides": applied,
        "first_trials": [
            t.model_dump(include={"trial_id", "variant_id", "task_id", "replication", "seed"})
            for t in trials[:5]
        ],
    }
