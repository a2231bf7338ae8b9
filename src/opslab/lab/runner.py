"""The lab runner: executes the plan's trials concurrently, each finished trial durable on disk at once,
resumable after any interruption (even kill -9), errored trials re-runnable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opslab.errors import InvalidInput, NotFound
from opslab.lab.artifacts import (
    SCHEMA_VERSION,
    canonical_digest,
    new_run_id,
    now,
    read_json,
    runner_info,
    write_json,
)
from opslab.lab.config import Resolved
from opslab.lab.plan import Trial, expand_trials
from opslab.lab.pool import run_pool
from opslab.lab.trial import TrialContext


@dataclass
class LabProgress:
    done: int
    failed: int
    total: int
    message: str


ProgressFn = Callable[[LabProgress], None]


def isolation_note(resolved: Resolved) -> dict[str, Any]:
    mode = resolved.config.runtime.network.mode
    return {
        "sandbox": "local",
        "container_image": resolved.config.runtime.sandbox.image,
        "network_mode": mode,
        "network_enforced": False,
        "note": (
            "trials run as local processes; network mode is recorded, not enforced"
            if mode != "full"
            else "trials run as local processes with full network"
        ),
    }


def prepare_run(resolved: Resolved, *, overrides: dict[str, Any] | None = None) -> Path:
    run_id = new_run_id()
    run_dir = resolved.lab_dir / "runs" / run_id
    run_dir.mkdir(parents=True)
    data = resolved.config.model_dump(mode="json")
    write_json(run_dir / "resolved_experiment.json", data)
    (run_dir / "resolved_experiment.digest").write_text(canonical_digest(data) + "\n")
    trials = expand_trials(resolved)
    write_json(
        run_dir / "manifest.json",
        {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "experiment_id": resolved.config.experiment.id,
            "experiment_path": str(resolved.experiment_path),
            "project_root": str(resolved.project_root),
            "dataset_path": str(resolved.dataset_path),
            "created_at": now(),
            "finished_at": None,
            "status": "running",
            "total_trials": len(trials),
            "overrides": overrides or {},
            "isolation": isolation_note(resolved),
            "retries": [],
            **runner_info(),
        },
    )
    return run_dir


def resolved_for_run(run_dir: Path, resolved_now: Resolved) -> Resolved:
    """Resume must run the same experiment the run started with."""
    frozen = read_json(run_dir / "resolved_experiment.json")
    if canonical_digest(frozen) != canonical_digest(resolved_now.config.model_dump(mode="json")):
        raise InvalidInput.for_field(
            "--resume", "the experiment changed since this run started; start a new run"
        )
    return resolved_now


def find_run(resolved: Resolved, run_id: str) -> Path:
    run_dir = resolved.lab_dir / "runs" / run_id
    if "/" in run_id or not (run_dir / "manifest.json").is_file():
        raise NotFound(f"no lab run {run_id!r} under {resolved.lab_dir / 'runs'}", details={"run_id": run_id})
    return run_dir


def execute(
    resolved: Resolved,
    run_dir: Path,
    *,
    concurrency: int,
    env_base: dict[str, str],
    retry_errors: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    trials = expand_trials(resolved)
    manifest = read_json(run_dir / "manifest.json")
    pending: list[Trial] = []
    retried: list[dict[str, Any]] = []
    for t in trials:
        out = run_dir / "trials" / t.trial_id / "trial_output.json"
        if not out.is_file():
            pending.append(t)
            continue
        if retry_errors:
            previous = read_json(out)
            if previous.get("outcome") == "error":
                retried.append({"trial_id": t.trial_id, "previous_error": previous.get("error"), "at": now()})
                pending.append(t)
    if retried:
        manifest["retries"] = [*manifest.get("retries", []), *retried]
        write_json(run_dir / "manifest.json", manifest)
    retried_ids = {r["trial_id"] for r in retried}
    total, already = len(trials), len(trials) - len(pending)
    if progress:
        progress(LabProgress(already, 0, total, "starting"))
    ctx = TrialContext(resolved, run_dir, env_base)
    attempts = {t.trial_id: 2 if t.trial_id in retried_ids else 1 for t in pending}
    count = _counter(already, total, progress)
    for record in run_pool(ctx, pending, attempts, max(1, concurrency)):
        count(record)
    final: dict[str, Any] = read_json(run_dir / "manifest.json")
    final.update(status="completed", finished_at=now())
    write_json(run_dir / "manifest.json", final, durable=True)
    return final


def _counter(already: int, total: int, progress: ProgressFn | None) -> Callable[[dict[str, Any]], None]:
    state = {"done": already, "failed": 0}

    def count(result: dict[str, Any]) -> None:
        state["done"] += 1
        state["failed"] += result["outcome"] == "error"
        if progress:
            progress(
                LabProgress(
                    state["done"], state["failed"], total, f"{result['trial_id']} {result['outcome']}"
                )
            )

    return count
