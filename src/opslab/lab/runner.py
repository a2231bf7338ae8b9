"""The lab runner: executes the plan's trials concurrently, each finished trial durable on disk at once,
resumable after any interruption (even kill -9), errored trials re-runnable."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opslab.errors import InvalidInput, NotFound
from opslab.lab import workspace
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
from opslab.lab.harness import build_argv, resolve_program, run_harness, trial_env
from opslab.lab.plan import Trial, expand_trials


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
    # Every workspace starts as a copy of the project: snapshot the project once, not each copy.
    pre = workspace.snapshot(resolved.project_root)
    total, already = len(trials), len(trials) - len(pending)
    if progress:
        progress(LabProgress(already, 0, total, "starting"))
    _run_chunk(
        resolved,
        run_dir,
        pending,
        max(1, concurrency),
        env_base,
        pre,
        retried_ids,
        _counter(already, total, progress),
    )
    final: dict[str, Any] = read_json(run_dir / "manifest.json")
    final.update(status="completed", finished_at=now())
    write_json(run_dir / "manifest.json", final, durable=True)
    return final


def _counter(already: int, total: int, progress: ProgressFn | None) -> Callable[[dict[str, Any]], None]:
    lock = threading.Lock()
    state = {"done": already, "failed": 0}

    def count(result: dict[str, Any]) -> None:
        with lock:
            state["done"] += 1
            state["failed"] += result["outcome"] == "error"
            if progress:
                progress(
                    LabProgress(
                        state["done"], state["failed"], total, f"{result['trial_id']} {result['outcome']}"
                    )
                )

    return count


def _run_chunk(
    resolved: Resolved,
    run_dir: Path,
    trials: list[Trial],
    threads: int,
    env_base: dict[str, str],
    pre: dict[str, str],
    retried: set[str],
    on_done: Callable[[dict[str, Any]], None] | None,
) -> None:
    def one(t: Trial) -> None:
        result = run_trial(
            resolved, run_dir, t, env_base=env_base, pre=pre, attempt=2 if t.trial_id in retried else 1
        )
        if on_done:
            on_done(result)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, trials))


def run_trial(
    resolved: Resolved,
    run_dir: Path,
    t: Trial,
    *,
    env_base: dict[str, str],
    attempt: int = 1,
    pre: dict[str, str] | None = None,
) -> dict[str, Any]:
    cfg = resolved.config
    tdir = run_dir / "trials" / t.trial_id
    if tdir.exists():
        _clear(tdir)  # an interrupted or errored attempt left files behind: start clean
    out_dir, state_dir, ws = tdir / "out", tdir / "state", tdir / "workspace"
    for d in (out_dir, state_dir):
        d.mkdir(parents=True, exist_ok=True)
    trial_input = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_dir.name,
        "trial_id": t.trial_id,
        "experiment_id": cfg.experiment.id,
        "suite_id": cfg.dataset.suite_id,
        "split_id": cfg.dataset.split_id,
        "task_id": t.task_id,
        "task": t.task,
        "variant": {"id": t.variant_id, "bindings": t.bindings},
        "variant_id": t.variant_id,
        "bindings": t.bindings,
        "replication": t.replication,
        "seed": t.seed,
    }
    write_json(tdir / "trial_input.json", trial_input)
    os.link(tdir / "trial_input.json", out_dir / "trial_input.json")  # the harness's copy, for free
    workspace.copy_project(resolved.project_root, ws)
    if pre is None:
        pre = workspace.snapshot(ws)
    write_json(state_dir / "pre.json", pre)
    events_path = out_dir / "harness_events.jsonl"
    env = trial_env(
        cfg.design.sanitization_profile,
        env_base,
        tdir,
        {
            "OPSLAB_TRIAL_ID": t.trial_id,
            "OPSLAB_RUN_ID": run_dir.name,
            "OPSLAB_TRIAL_SEED": str(t.seed),
            "OPSLAB_EVENTS_PATH": str(events_path),
        },
    )
    argv = build_argv(
        cfg.runtime.harness.command, out_dir / "trial_input.json", out_dir / "trial_output.json"
    )
    argv[0] = resolve_program(argv[0], env.get("PATH", ""))
    res = run_harness(
        argv=argv,
        cwd=ws,
        env=env,
        timeout_s=cfg.design.trial_timeout_s,
        stdout=out_dir / "stdout.log",
        stderr=out_dir / "stderr.log",
        output_path=out_dir / "trial_output.json",
        trainer=cfg.experiment.workload_type == "trainer",
    )
    post = workspace.snapshot(ws)
    write_json(state_dir / "post.json", post)
    write_json(state_dir / "diff.json", workspace.diff(pre, post))
    events = (
        _events(events_path, ws / "harness_events.jsonl")
        if cfg.runtime.harness.integration_level != "cli_basic"
        else []
    )
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        **{k: trial_input[k] for k in ("trial_id", "variant_id", "task_id", "replication", "seed")},
        "outcome": res.outcome,
        "metrics": res.output.get("metrics") or {},
        "result": res.output.get("result"),
        "error": res.error or res.output.get("error"),
        "exit_code": res.exit_code,
        "duration_ms": round(res.duration_ms, 3),
        "attempt": attempt,
        "event_counts": _count(events),
        **{
            k: res.output[k]
            for k in ("objective", "train_loss", "val_acc", "wall_time_s", "checkpoints")
            if k in res.output
        },
    }
    write_json(tdir / "trial_output.json", record, durable=True)  # written last: its presence = trial done
    return record


def _clear(tdir: Path) -> None:
    shutil.rmtree(tdir, ignore_errors=True)


def _events(*paths: Path) -> list[dict[str, Any]]:
    for p in paths:
        if p.is_file():
            out = []
            for line in p.read_text(errors="replace").splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    out.append(ev)
            return out
    return []


def _count(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ev in events:
        kind = str(ev.get("type") or ev.get("event") or "event")
        counts[kind] = counts.get(kind, 0) + 1
    return counts
