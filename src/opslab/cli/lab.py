"""``opslab lab …``: init, describe, run, run-dev, run-experiment, clean.

With ``--json`` every command prints exactly one JSON object on stdout — ``{"ok": true, "command": …}``
or ``{"ok": false, "error": {"code", "message", "details"}}`` — and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from opslab.cli.context import console, err_console
from opslab.errors import InvalidInput, OpslabError, PolicyViolation

lab_app = typer.Typer(
    help="Experiments: your harness over tasks × variants × replications.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Exactly one JSON object on stdout.")]
ExperimentArg = Annotated[Path, typer.Argument(metavar="EXPERIMENT", help="Path to .lab/experiment.yaml")]
OverridesOpt = Annotated[
    Path | None, typer.Option("--overrides", help="Knob overrides file (overrides.json).")
]


def _emit(command: str, as_json: bool, body: Callable[[], dict[str, Any]]) -> None:
    """Run a command body; in JSON mode turn every outcome, errors included, into one envelope."""
    if not as_json:
        body()
        return
    try:
        result = body()
    except OpslabError as exc:
        typer.echo(json.dumps({"ok": False, "command": command, "error": exc.to_dict()}))
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - the envelope promises JSON even for the unexpected
        typer.echo(
            json.dumps(
                {
                    "ok": False,
                    "command": command,
                    "error": {"code": "command_failed", "message": str(exc), "details": {}},
                }
            )
        )
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"ok": True, "command": command, **result}, default=str))


def _resolve(experiment: Path, overrides: Path | None) -> tuple[Any, dict[str, Any]]:
    from opslab.lab import apply_overrides, resolve
    from opslab.lab.config import read_yaml

    if overrides is None:
        return resolve(experiment), {}
    data, applied = apply_overrides(read_yaml(experiment), overrides)
    return resolve(experiment, data), applied


@lab_app.command("init")
def init(as_json: JsonFlag = False, force: Annotated[bool, typer.Option(help="Overwrite.")] = False) -> None:
    """Write a skeleton .lab/experiment.yaml with every REQUIRED field marked."""
    from opslab.lab import SKELETON

    def body() -> dict[str, Any]:
        path = Path(".lab/experiment.yaml")
        if path.exists() and not force:
            raise InvalidInput.for_field("--force", f"{path} exists; pass --force to overwrite it")
        path.parent.mkdir(exist_ok=True)
        path.write_text(SKELETON)
        if not as_json:
            console.print(
                f"wrote {path}: fill in the fields marked REQUIRED, then `opslab lab describe {path}`"
            )
        return {"path": str(path)}

    _emit("init", as_json, body)


@lab_app.command("describe")
def describe(experiment: ExperimentArg, overrides: OverridesOpt = None, as_json: JsonFlag = False) -> None:
    """Pre-flight: the resolved config, the harness path check and the trial plan."""

    from opslab.lab.describe import describe as describe_experiment

    def body() -> dict[str, Any]:
        resolved, applied = _resolve(experiment, overrides)
        summary = describe_experiment(resolved, applied)
        if not as_json:
            table = Table(show_header=False, title=f"experiment {summary['experiment_id']}")
            for key in (
                "project_root",
                "dataset_path",
                "tasks",
                "variants",
                "replications",
                "total_trials",
                "harness_command",
                "harness_script_resolved",
                "harness_script_exists",
                "network_mode",
                "sandbox_mode",
                "sanitization_profile",
            ):
                table.add_row(key, str(summary[key]))
            console.print(table)
            if not summary["harness_script_exists"]:
                err_console.print(
                    "[yellow]warning[/yellow]: the harness script does not exist: every trial would fail"
                )
            console.print(summary["isolation"]["note"])
        return {"summary": summary}

    _emit("describe", as_json, body)


def _run(
    command: str,
    experiment: Path,
    *,
    concurrency: int | None,
    overrides: Path | None,
    resume: str | None,
    retry_errors: bool,
    as_json: bool,
) -> None:
    from opslab.lab import execute, expand_trials, find_run, prepare_run, resolved_for_run

    def body() -> dict[str, Any]:
        resolved, applied = _resolve(experiment, overrides)
        if command == "run-experiment" and resolved.config.runtime.network.mode != "none":
            raise PolicyViolation(
                f"network.mode: run-experiment requires 'none', the experiment says "
                f"{resolved.config.runtime.network.mode!r}",
                details={"field": "runtime.network.mode"},
            )
        if command in ("run-dev", "run-experiment"):
            raise PolicyViolation(
                f"{command} runs trials in containers, and no container isolation backend is available yet; "
                "use `opslab lab run` for local trials (network mode is recorded, not enforced)",
                details={"command": command, "available": ["run"]},
            )
        if retry_errors and not resume:
            raise InvalidInput.for_field("--retry-errors", "needs --resume RUN_ID")
        if resume:
            run_dir = find_run(resolved, resume)
            resolved_for_run(run_dir, resolved)
        else:
            run_dir = prepare_run(resolved, overrides=applied)
        workers = concurrency or os.cpu_count() or 1
        # The child environment starts from the runner's own; the sanitization profile then filters it.
        env_base = dict(os.environ)
        bar = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TimeRemainingColumn(),
            console=err_console,
            disable=as_json or not sys.stderr.isatty(),
        )
        with bar:
            task = bar.add_task("trials", total=len(expand_trials(resolved)), failed=0)

            def on_progress(p: Any) -> None:
                bar.update(task, completed=p.done, failed=p.failed)
                if p.message != "starting" and prefetch.ident is None:
                    prefetch.start()  # workers are forked by now: import the analysis while trials run

            prefetch = threading.Thread(target=_import_analysis, name="opslab-prefetch", daemon=True)

            manifest = execute(
                resolved,
                run_dir,
                concurrency=workers,
                env_base=env_base,
                retry_errors=retry_errors,
                progress=on_progress,
            )
        from opslab.lab.finish import finish_run  # NumPy and SciPy: imported while the trials ran

        done = finish_run(resolved, run_dir)
        comparison, outcomes = done["comparison"], done["outcomes"]
        if not as_json:
            table = Table(title=f"run {run_dir.name}")
            for col in ("variant", "n", "success", "95% CI", "errors"):
                table.add_column(col)
            for vid, v in comparison["variants"].items():
                lo, hi = v["success_ci"]
                rate = v["success_rate"]
                table.add_row(
                    vid,
                    str(v["n"]),
                    "—" if rate is None else f"{rate:.1%}",
                    f"{lo:.1%} – {hi:.1%}",
                    str(v["errors"]),
                )
            console.print(table)
            console.print(f"artifacts: {run_dir}")
        return {
            "run": {
                "run_id": run_dir.name,
                "run_dir": str(run_dir),
                "status": manifest["status"],
                "total_trials": len(done["outputs"]),
                "outcomes": outcomes,
                "tables": done["tables"],
                "retried": len(manifest.get("retries", [])),
            }
        }

    _emit(command, as_json, body)


def _import_analysis() -> None:
    with contextlib.suppress(OSError, AttributeError):  # Linux: nice this thread alone, not the runner
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    import opslab.lab.finish  # noqa: F401  (NumPy)
    from opslab.judge import stats

    stats._t_quantile(0.975, 10)  # SciPy


@lab_app.command("run")
def run(
    experiment: ExperimentArg,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Trials at once (default: CPUs).")
    ] = None,
    overrides: OverridesOpt = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue an interrupted run.")] = None,
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="With --resume: re-run errored trials.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Execute every trial locally, then build the analysis tables."""
    _run(
        "run",
        experiment,
        concurrency=concurrency,
        overrides=overrides,
        resume=resume,
        retry_errors=retry_errors,
        as_json=as_json,
    )


@lab_app.command("run-dev")
def run_dev(experiment: ExperimentArg, overrides: OverridesOpt = None, as_json: JsonFlag = False) -> None:
    """Full network, container forced (refused until a container backend exists)."""
    _run(
        "run-dev",
        experiment,
        concurrency=None,
        overrides=overrides,
        resume=None,
        retry_errors=False,
        as_json=as_json,
    )


@lab_app.command("run-experiment")
def run_experiment(
    experiment: ExperimentArg, overrides: OverridesOpt = None, as_json: JsonFlag = False
) -> None:
    """Strict: network mode must be none, container forced (refused until a container backend exists)."""
    _run(
        "run-experiment",
        experiment,
        concurrency=None,
        overrides=overrides,
        resume=None,
        retry_errors=False,
        as_json=as_json,
    )


@lab_app.command("clean")
def clean(
    init_files: Annotated[bool, typer.Option("--init", help="Remove .lab/experiment.yaml.")] = False,
    runs: Annotated[bool, typer.Option("--runs", help="Remove .lab/runs/.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove generated files or run directories."""

    def body() -> dict[str, Any]:
        if not (init_files or runs):
            raise InvalidInput.for_field("--init/--runs", "say what to clean")
        removed = []
        if runs and Path(".lab/runs").exists():
            shutil.rmtree(".lab/runs")
            removed.append(".lab/runs")
        if init_files and Path(".lab/experiment.yaml").exists():
            Path(".lab/experiment.yaml").unlink()
            removed.append(".lab/experiment.yaml")
        if not as_json:
            console.print(f"removed: {', '.join(removed) or 'nothing'}")
        return {"removed": removed}

    _emit("clean", as_json, body)
