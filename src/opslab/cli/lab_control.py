"""``opslab lab replay|fork|pause|stop|resume|cancel|publish|validate-hooks|validate-schema``: controlling
runs.

The use cases live in ``opslab.lab`` (``replay_trial``, ``fork_trial``, ``pause_run``, ``stop_run``,
``resume_run``, ``publish_run``, ``validate_hooks``, ``validate_schema``); this module parses options and
prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from opslab.cli.context import console, err_console, escape
from opslab.cli.lab import JsonFlag, _emit, lab_app
from opslab.cli.lab_display import TrialProgress
from opslab.errors import InvalidInput

if TYPE_CHECKING:
    pass

T = TypeVar("T")
RunDirOpt = Annotated[
    Path, typer.Option("--run-dir", metavar="DIR", help="The run's folder (.lab/runs/<id>).")
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (kept in control.json).")]


def _env() -> dict[str, str]:
    # The trials' environment starts from the runner's own and the sanitization profile filters it;
    # publish masks the secrets it names. Passed on, never read as configuration.
    return dict(os.environ)  # noqa: TID251


@lab_app.command("replay")
def replay(
    run_dir: RunDirOpt,
    trial_id: Annotated[str, typer.Option("--trial-id", help="The trial to re-execute.")],
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore", metavar="PATH", help="Leave a field out of the comparison (metrics.latency_ms)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-execute a trial from its artifacts into replays/ and compare outcome, metrics and result."""
    from opslab.lab import replay_trial

    def body() -> dict[str, Any]:
        r = replay_trial(run_dir, trial_id, env_base=_env(), ignore=ignore or ())
        if not as_json:
            verdict = "[green]matches[/green]" if r.matches else "[yellow]differs[/yellow]"
            console.print(f"replay of {r.trial_id}: {verdict} ({r.original.outcome} -> {r.replay.outcome})")
            for d in r.differences:
                console.print(
                    f"  {escape(d.field)}: {d.original!r} -> {d.replay!r} ({d.change})", highlight=False
                )
            console.print(f"artifacts: {r.replay_dir}")
        return {"replay": r.model_dump(mode="json")}

    _emit("replay", as_json, body)


@lab_app.command("fork")
def fork(
    run_dir: RunDirOpt,
    from_trial: Annotated[
        str, typer.Option("--from-trial", help="The trial whose checkpoint to start from.")
    ],
    at: Annotated[
        str, typer.Option("--at", metavar="SELECTOR", help="A label, last, or an index (-1: last).")
    ],
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="Override a binding (JSON values; dotted keys nest)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a new trial from a checkpoint of an earlier one, with bindings overridden."""
    from opslab.lab import fork_trial, parse_sets

    def body() -> dict[str, Any]:
        f, trial = fork_trial(run_dir, from_trial, at=at, sets=parse_sets(sets or []), env_base=_env())
        if not as_json:
            label = f" {f.checkpoint.label!r}" if f.checkpoint.label else ""
            console.print(
                f"fork {f.fork_id} of {f.from_trial} at checkpoint {f.checkpoint.index}{escape(label)}: "
                f"{trial.outcome}"
            )
            console.print(f"artifacts: {f.fork_dir}")
        return {"fork": f.model_dump(mode="json"), "trial": trial.model_dump(mode="json")}

    _emit("fork", as_json, body)


@lab_app.command("pause")
def pause(run_dir: RunDirOpt, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
    """Pause a run at the next safe boundary: no new trial starts; running trials finish."""
    from opslab.lab import pause_run

    def body() -> dict[str, Any]:
        result = pause_run(run_dir, reason=reason)
        if not as_json:
            who = (
                f"runner {result.runner_pid} starts no new trial"
                if result.runner_active
                else "no runner holds it; `opslab lab resume` runs the rest"
            )
            console.print(f"run {result.run_id} paused{'' if result.changed else ' (already)'}: {who}")
        return {"control": result.model_dump(mode="json")}

    _emit("pause", as_json, body)


@lab_app.command("stop")
def stop(run_dir: RunDirOpt, reason: ReasonOpt = None, as_json: JsonFlag = False) -> None:
    """Stop a run at the next safe boundary: no trial starts again; running trials finish and the run
    ends stopped (`opslab lab resume` runs the rest later)."""
    from opslab.lab import stop_run

    def body() -> dict[str, Any]:
        result = stop_run(run_dir, reason=reason)
        if not as_json:
            who = (
                f"runner {result.runner_pid} starts no trial again and ends the run"
                if result.runner_active
                else "no runner holds it; `opslab lab resume` runs the rest"
            )
            console.print(f"run {result.run_id} stopped{'' if result.changed else ' (already)'}: {who}")
        return {"control": result.model_dump(mode="json")}

    _emit("stop", as_json, body)


@lab_app.command("resume")
def resume(
    run_dir: RunDirOpt,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Trials at once when this runs them (default: CPUs)."),
    ] = None,
    reason: ReasonOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Resume a paused run; with no runner holding it, run its remaining trials here."""
    from opslab.lab import resume_run

    def body() -> dict[str, Any]:
        with TrialProgress(as_json) as on_progress:
            result, run = resume_run(
                run_dir,
                env_base=_env(),
                concurrency=concurrency or os.cpu_count() or 1,
                progress=on_progress,
                reason=reason,
            )
        if not as_json:
            if run is None:
                console.print(f"run {result.run_id} resumed: runner {result.runner_pid} goes on")
            else:
                console.print(f"run {result.run_id} {run.status}: {run.outcomes}; artifacts: {run.run_dir}")
        return {"control": result.model_dump(mode="json"), "run": run.envelope() if run else None}

    _emit("resume", as_json, body)


@lab_app.command("publish")
def publish(
    run_dir: RunDirOpt,
    output: Annotated[
        Path | None, typer.Option("--output", metavar="FILE", help="Default: RUN_DIR/debug_bundle.tar.gz.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a debug bundle (tar.gz) of the run with its secrets redacted."""
    from opslab.lab import publish_run

    def body() -> dict[str, Any]:
        bundle = publish_run(run_dir, output=output, env=_env())
        if not as_json:
            console.print(
                f"wrote {bundle.path}: {bundle.files} files ({bundle.redacted_files} redacted), "
                f"{bundle.bytes} bytes, sha256 {bundle.sha256}"
            )
        return {"bundle": bundle.model_dump(mode="json", exclude={"manifest"})}

    _emit("publish", as_json, body)


@lab_app.command("validate-hooks")
def validate_hooks(
    events: Annotated[Path, typer.Option("--events", metavar="FILE", help="A harness_events.jsonl.")],
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest", metavar="FILE", help="Harness manifest (default: .lab/harness_manifest.json)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check an event stream against the harness manifest: JSON, declared types, required fields, order."""
    from opslab.lab import validate_hooks as check

    def body() -> dict[str, Any]:
        report = _listing(lambda: check(events, manifest), as_json)
        if not as_json:
            console.print(f"ok: {report.events} events {report.types} ({report.manifest or 'no manifest'})")
        return {"report": report.model_dump(mode="json")}

    _emit("validate-hooks", as_json, body)


@lab_app.command("validate-schema")
def validate_schema(
    file: Annotated[Path, typer.Argument(metavar="FILE")],
    schema: Annotated[
        str, typer.Option("--schema", metavar="NAME", help="trial_input, experiment, events, …")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Check a JSON (or YAML, JSON Lines) file against one of the lab's named schemas."""
    from opslab.lab import validate_schema as check

    def body() -> dict[str, Any]:
        report = _listing(lambda: check(schema, file), as_json)
        if not as_json:
            console.print(f"ok: {file} is a valid {schema}")
        return {"report": report.model_dump(mode="json")}

    _emit("validate-schema", as_json, body)


def _listing(check: Callable[[], T], as_json: bool) -> T:
    """In human mode, every problem listed on its own line (the error then names the first)."""
    try:
        return check()
    except InvalidInput as exc:
        if not as_json:
            for e in exc.details.get("errors", []):
                line = f"line {e['line']}: " if e.get("line") else ""
                err_console.print(
                    f"  {escape(line + str(e['field']))}: {escape(str(e['message']))}", highlight=False
                )
        raise


@lab_app.command("cancel")
def cancel(
    lab_run_id: Annotated[str, typer.Argument(help="The id `opslab lab run --url` printed.")],
    url: Annotated[str | None, typer.Option("--url", help="Service URL (default: OPSLAB_URL).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a lab run of the service: its running trials are stopped, those recorded are kept."""
    from opslab.cli.context import settings
    from opslab.client import OpslabClient

    def body() -> dict[str, Any]:
        if not (url or settings().url):
            raise InvalidInput.for_field("--url", "lab runs of a service: pass --url or set OPSLAB_URL")
        with OpslabClient.from_settings(settings(), url) as client:
            view = client.cancel_lab_run(lab_run_id)
        if not as_json:
            console.print(f"lab run {lab_run_id}: {view.status} ({view.message})")
        return {"lab_run_id": lab_run_id, "status": view.status}

    _emit("cancel", as_json, body)
