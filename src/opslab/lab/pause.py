"""Pausing, resuming and stopping a run: ``opslab lab pause``, ``resume`` and ``stop``.

    pause    sets the control file to paused. A runner holding the run starts no new trial (its pool
             asks before each one), lets the running ones finish, and waits, still holding the run;
             ``sdk_control`` / ``sdk_full`` harnesses read the same file. If that runner is stopped
             while paused (Ctrl-C, SIGTERM) its manifest says ``paused``. A run no runner holds (one that
             was interrupted or crashed) is marked ``paused`` at once.
    resume   sets the control file to running. A runner holding the run goes on by itself; if none does,
             this call runs the remaining trials — those without a record, as ``run --resume`` would,
             with the run's frozen config and isolation — and analyses the run.
    stop     sets the control file to stopped. A runner holding the run starts no trial again, lets the
             running ones finish (``sdk_control`` / ``sdk_full`` harnesses may end early: they read the
             same file), analyses what ran and ends with the manifest saying ``stopped``. A run no runner
             holds is marked ``stopped`` at once. ``resume`` (or ``run --resume``) runs the rest later.

A completed run can be neither paused, resumed nor stopped (``Conflict``). Each is idempotent otherwise:
pausing a paused run, or resuming one that a runner is running, changes nothing and says so.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pydantic import BaseModel

from opslab.errors import Conflict, NotFound
from opslab.lab.artifacts import read_model, write_model
from opslab.lab.control import ControlState, held_slots, read_control, write_control
from opslab.lab.derived import isolation_of, open_run
from opslab.lab.records import Manifest, RunStatus
from opslab.lab.runner import LabProgressFn, execute, own_run
from opslab.lab.services import RunServicesScope
from opslab.lab.session import LabRun


class ControlResult(BaseModel):
    """What ``pause`` or ``resume`` did: the state asked for, whether it changed, the runner obeying it."""

    run_id: str
    run_dir: Path
    state: ControlState
    changed: bool
    runner_active: bool  # a runner holds the run (and obeys the file)
    runner_pid: int | None = None  # its pid
    status: RunStatus  # the manifest's, afterwards
    held_slots: int = 0  # the runner's pool slots waiting at the gate now (all of them: nothing runs)


def pause_run(run_dir: Path, *, reason: str | None = None) -> ControlResult:
    run_dir = run_dir.resolve()
    manifest = _manifest(run_dir, "pause")
    changed = read_control(run_dir).state != "paused"
    runner, held = _hold(run_dir)
    with held:
        if changed:
            write_control(run_dir, "paused", reason)
        if runner is None and manifest.status != "paused":
            manifest.status = "paused"
            write_model(run_dir / "manifest.json", manifest, durable=True)
    return _result(run_dir, "paused", changed, runner)


def stop_run(run_dir: Path, *, reason: str | None = None) -> ControlResult:
    run_dir = run_dir.resolve()
    manifest = _manifest(run_dir, "stop")
    changed = read_control(run_dir).state != "stopped"
    runner, held = _hold(run_dir)
    with held:
        if changed:
            write_control(run_dir, "stopped", reason)
        if runner is None and manifest.status != "stopped":
            manifest.status = "stopped"
            write_model(run_dir / "manifest.json", manifest, durable=True)
    return _result(run_dir, "stopped", changed, runner)


def resume_run(
    run_dir: Path,
    *,
    env_base: dict[str, str],
    concurrency: int = 1,
    progress: LabProgressFn | None = None,
    reason: str | None = None,
) -> tuple[ControlResult, LabRun | None]:
    """Resume; when no runner holds the run, run its remaining trials here (the ``LabRun``)."""
    run_dir = run_dir.resolve()
    _manifest(run_dir, "resume")
    changed = read_control(run_dir).state != "running"
    runner, held = _hold(run_dir)
    with held:
        if changed:
            write_control(run_dir, "running", reason)
        if runner is not None:
            return _result(run_dir, "running", changed, runner), None
        lab_run = _run_rest(run_dir, env_base, concurrency, progress)  # still holding the run
    return _result(run_dir, "running", changed, None), lab_run


def _run_rest(
    run_dir: Path, env_base: dict[str, str], concurrency: int, progress: LabProgressFn | None
) -> LabRun:
    run = open_run(run_dir, with_tasks=True)
    with RunServicesScope(run.resolved, run.run_dir, isolation_of(run), env=env_base) as services:
        manifest = execute(
            run.resolved,
            run.run_dir,
            concurrency=max(1, concurrency),
            env_base=env_base,
            progress=progress,
            isolation=services,
        )
    from opslab.lab.finish import analyse_run  # NumPy and SciPy

    return LabRun.of(run.run_dir, manifest, analyse_run(run.resolved, run.run_dir))


def _manifest(run_dir: Path, what: str) -> Manifest:
    if not (run_dir / "manifest.json").is_file():
        raise NotFound(f"{run_dir}: not a lab run (no manifest.json)", details={"run_dir": str(run_dir)})
    manifest = read_model(run_dir / "manifest.json", Manifest)
    if manifest.status == "completed":
        raise Conflict(
            f"run {run_dir.name} is completed: there is nothing to {what}",
            details={"run_id": run_dir.name, "status": manifest.status},
        )
    return manifest


def _hold(run_dir: Path) -> tuple[str | None, contextlib.ExitStack]:
    """The pid of the runner holding the run, or None and the run held (until the stack closes)."""
    held = contextlib.ExitStack()
    try:
        held.enter_context(own_run(run_dir, wait_s=0))
    except Conflict as exc:
        return str(exc.details.get("pid") or "?"), held
    return None, held


def _result(run_dir: Path, state: ControlState, changed: bool, runner: str | None) -> ControlResult:
    manifest = read_model(run_dir / "manifest.json", Manifest)
    return ControlResult(
        run_id=run_dir.name,
        run_dir=run_dir,
        state=state,
        changed=changed,
        runner_active=runner is not None,
        runner_pid=int(runner) if runner and runner.isdigit() else None,
        status=manifest.status,
        held_slots=held_slots(run_dir),
    )
