"""``opslab lab …``: init, describe, run, run-dev, run-experiment, clean.

With ``--json`` every command prints exactly one JSON object on stdout — ``{"ok": true, "command": …}``
or ``{"ok": false, "error": {"code", "message", "details"}}`` — and nothing else. The use cases live in
``opslab.lab``; this module parses options, shows progress and prints.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from opslab.cli import codecache
from opslab.cli.context import console, err_console, escape, service_url, settings
from opslab.cli.lab_display import TrialProgress, print_run
from opslab.cli.lab_remote import Executor, run_remote, trial_queue
from opslab.errors import InvalidInput, OperationFailed, OpslabError

if TYPE_CHECKING:
    from opslab.client import OpslabClient
    from opslab.lab import LabProgress, RunMode, TrialReporter

lab_app = typer.Typer(
    help="Experiments: your harness over tasks × variants × replications.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Exactly one JSON object on stdout.")]
ExperimentArg = Annotated[Path, typer.Argument(metavar="EXPERIMENT", help="Path to .lab/experiment.yaml")]
OverridesOpt = Annotated[
    Path | None, typer.Option("--overrides", help="Knob overrides file (overrides.json).")
]
ReportToOpt = Annotated[
    str | None,
    typer.Option(
        "--report-to",
        metavar="URL",
        help="Post each finished trial to this opslab service as an agent run (default: OPSLAB_URL).",
    ),
]


def _emit(command: str, as_json: bool, body: Callable[[], dict[str, Any]]) -> None:
    """Run a command body; in JSON mode turn every outcome, errors included, into one envelope.

    SIGTERM interrupts like Ctrl-C (a runner then stops its trials and records why): an interrupt ends
    the command with the ``interrupted`` error (its envelope in JSON mode) and exit code 130."""
    from opslab.lab import RunInterrupted, interrupt_on_signals

    try:
        with interrupt_on_signals():
            if not as_json:
                body()
                return
            result = body()
    except KeyboardInterrupt as exc:
        stop = exc if isinstance(exc, RunInterrupted) else RunInterrupted("SIGINT")
        if as_json:
            typer.echo(json.dumps({"ok": False, "command": command, "error": stop.to_dict()}))
        else:
            err_console.print(f"[yellow]{escape(stop.message)}[/yellow]", soft_wrap=True)
        # Ends here, without the interpreter's shutdown: a daemon thread may be importing a C extension
        # (the analysis prefetch), and finalizing under it can crash the process (SIGSEGV, not 130).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(stop.exit_code)
    except OpslabError as exc:
        if not as_json:
            raise  # printed by the CLI's one handler
        typer.echo(json.dumps({"ok": False, "command": command, "error": exc.to_dict()}))
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - the envelope promises JSON even for the unexpected
        if not as_json:
            raise
        error = {"code": "command_failed", "message": str(exc), "details": {}}
        typer.echo(json.dumps({"ok": False, "command": command, "error": error}))
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"ok": True, "command": command, **result}, default=str))


@lab_app.command("init")
def init(as_json: JsonFlag = False, force: Annotated[bool, typer.Option(help="Overwrite.")] = False) -> None:
    """Write a skeleton .lab/experiment.yaml with every REQUIRED field marked, and ./lab, an executable
    that runs `opslab lab` (the seed's `./lab …` commands); a ./lab that is not ours is kept."""
    from opslab.lab import SKELETON, write_launcher

    def body() -> dict[str, Any]:
        path = Path(".lab/experiment.yaml")
        if path.exists() and not force:
            raise InvalidInput.for_field("--force", f"{path} exists; pass --force to overwrite it")
        path.parent.mkdir(exist_ok=True)
        path.write_text(SKELETON)
        launcher = write_launcher(Path("."), force=force)
        if not as_json:
            console.print(
                f"wrote {path}: fill in the fields marked REQUIRED, then `./lab describe {path}`"
                if launcher
                else f"wrote {path} (kept ./lab, which is not opslab's): fill in the fields marked "
                f"REQUIRED, then `opslab lab describe {path}`"
            )
        return {"path": str(path), "launcher": f"./{launcher.name}" if launcher else None}

    _emit("init", as_json, body)


DESCRIBED = ("project_root", "dataset_path", "tasks", "variants", "replications", "total_trials")
DESCRIBED_TOO = ("harness_command", "harness_script_resolved", "harness_script_exists", "network_mode")
DESCRIBED_LAST = ("sandbox_mode", "container_image", "sanitization_profile")


@lab_app.command("describe")
def describe(
    experiment: ExperimentArg,
    overrides: OverridesOpt = None,
    container: Annotated[
        bool, typer.Option("--container", help="Describe `run --container`: the trials in the image.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Pre-flight: the resolved config, the harness path check, the trial plan and the isolation, checked
    on this machine as a run checks it (a configured image too)."""
    from opslab.lab import describe_experiment, resolve_with_overrides

    def body() -> dict[str, Any]:
        resolved = resolve_with_overrides(experiment, overrides, require_tasks=False)
        summary = describe_experiment(*resolved, container=container)
        if not as_json:
            from rich.table import Table

            table = Table(show_header=False, title=f"experiment {summary['experiment_id']}")
            for key in (*DESCRIBED, *DESCRIBED_TOO, *DESCRIBED_LAST):
                table.add_row(key, str(summary[key]))
            console.print(table)
            if summary["dataset_error"]:
                err_console.print(
                    f"[yellow]warning[/yellow]: {escape(summary['dataset_error'])}: no trial would run"
                )
            if not summary["harness_script_exists"]:
                err_console.print(
                    "[yellow]warning[/yellow]: the harness script does not exist: every trial would fail"
                )
            if summary["container_error"]:
                err_console.print(
                    f"[yellow]note[/yellow]: `run` runs locally; the container runs could not: "
                    f"{escape(summary['container_error'])}"
                )
            console.print(summary["isolation"]["note"])
        return {"summary": summary}

    _emit("describe", as_json, body)


def _run(
    mode: RunMode,
    experiment: Path,
    overrides: Path | None,
    report_to: str | None,
    as_json: bool,
    concurrency: int | None = None,
    resume: str | None = None,
    retry_errors: bool = False,
    container: bool = False,
    setup: str | None = None,
    executor: Executor = "local",
) -> None:
    if mode == "run" and not container and resume is None:
        # The default plan's sandbox probes run while the lab's modules import and the experiment
        # resolves (a plan that turns out to need other probes makes its own).
        from opslab.lab import probe_ahead

        probe_ahead()
    from opslab.lab import run_experiment

    clients: list[OpslabClient] = []

    def connect() -> TrialReporter | None:
        # Called by the run from its reporting thread once the first trial is done: settings and the
        # client load off the trials' critical path. No --report-to and no OPSLAB_URL: reporting is off.
        url = report_to or service_url()
        if not url:
            return None
        from opslab.client import OpslabClient
        from opslab.lab import IngestReporter

        clients.append(OpslabClient.from_settings(settings(), url=url, timeout=10.0))
        return IngestReporter(clients[0])

    # The trials' environment starts from the runner's own and the sanitization profile filters it:
    # passed through to the harness, never read as configuration.
    env_base = dict(os.environ)  # noqa: TID251
    # Then, for this process alone: the OpenBLAS of the analysis's NumPy would start a thread per core
    # that spins for a while; the analysis does no linear algebra, and the spin takes CPU from trials.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # noqa: TID251

    # The run's start-up (the lab's modules, the plan, the workers) makes many objects and no garbage, as
    # the command's own does (``opslab.cli.app``): the cyclic GC resumes once the trials run.
    gc.disable()

    def body() -> dict[str, Any]:
        try:
            with TrialProgress(as_json) as show, trial_queue(executor) as queue:

                def on_progress(p: LabProgress) -> None:
                    if p.message != "starting":
                        gc.enable()
                    show(p)

                run = run_experiment(
                    experiment,
                    mode=mode,
                    overrides=overrides,
                    resume=resume,
                    retry_errors=retry_errors,
                    concurrency=concurrency,
                    env_base=env_base,
                    progress=on_progress,
                    reporter=connect,
                    container=container,
                    setup=setup,
                    queue=queue,
                )
        finally:
            for client in clients:
                client.close()
        if not as_json:
            print_run(run, clients[0].base_url if clients else None)
        errored = run.outcomes.get("error", 0)
        if run.total_trials and errored == run.total_trials:
            raise OperationFailed(
                f"every trial errored ({errored} of {run.total_trials}); see the trials' out/stderr.log "
                f"under {run.run_dir}/trials",
                details={"run": run.envelope()},
            )
        return {"run": run.envelope()}

    _emit(mode, as_json, body)
    _finish()


def _finish() -> NoReturn:
    """End a finished run's process now that all it had to write is written: the interpreter's teardown
    of every module and object a run loaded (the analysis's NumPy among them) has nothing left to do,
    and took a tenth of a second or more after the run's last trial."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    codecache.save()
    os._exit(0)


ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="Trials at once (default: CPUs).")
]
ResumeOpt = Annotated[
    str | None, typer.Option("--resume", metavar="RUN_ID", help="Continue an interrupted run.")
]
ExecutorOpt = Annotated[
    Executor,
    typer.Option(
        "--executor",
        help="Where trials run: local (this process's pool) or rq (`opslab worker` processes through "
        "OPSLAB_REDIS_URL, sharing the runs folder).",
    ),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="Run it as a job of this opslab service (the experiment path must be on its allowed roots).",
    ),
]


@lab_app.command("run")
def run(
    experiment: ExperimentArg,
    concurrency: ConcurrencyOpt = None,
    overrides: OverridesOpt = None,
    resume: ResumeOpt = None,
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="With --resume: re-run errored trials.")
    ] = False,
    container: Annotated[
        bool,
        typer.Option(
            "--container",
            help="Run trials in runtime.sandbox.image (refused without one); without it they run locally.",
        ),
    ] = False,
    executor: ExecutorOpt = "local",
    url: UrlOpt = None,
    report_to: ReportToOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Execute every trial locally (or with --container in the image), with the configured network
    isolation, then build the analysis tables."""
    if url is not None:
        if overrides or resume or retry_errors or container or report_to:
            raise InvalidInput.for_field(
                "--url",
                "a service runs the experiment as it is: no --overrides, --resume, --retry-errors, "
                "--container or --report-to",
            )
        _emit("run", as_json, lambda: run_remote(experiment, url, executor, concurrency, as_json))
        return
    _run(
        "run",
        experiment,
        overrides,
        report_to,
        as_json,
        concurrency,
        resume,
        retry_errors,
        container,
        executor=executor,
    )


@lab_app.command("run-dev")
def run_dev(
    experiment: ExperimentArg,
    setup: Annotated[
        str | None,
        typer.Option("--setup", metavar="CMD", help="Run once in the container before the trials (npm ci)."),
    ] = None,
    concurrency: ConcurrencyOpt = None,
    overrides: OverridesOpt = None,
    resume: ResumeOpt = None,
    report_to: ReportToOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Iterate: network forced to full, trials in the container, an optional --setup command first."""
    _run("run-dev", experiment, overrides, report_to, as_json, concurrency, resume, setup=setup)


@lab_app.command("run-experiment")
def run_experiment(
    experiment: ExperimentArg,
    concurrency: ConcurrencyOpt = None,
    overrides: OverridesOpt = None,
    resume: ResumeOpt = None,
    report_to: ReportToOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Strict: network mode must be none, trials in the container (refused without an image)."""
    _run("run-experiment", experiment, overrides, report_to, as_json, concurrency, resume)


@lab_app.command("clean")
def clean(
    init_files: Annotated[
        bool,
        typer.Option(
            "--init", help="Remove what init and knobs-init wrote (experiment.yaml, knobs/, ./lab)."
        ),
    ] = False,
    runs: Annotated[bool, typer.Option("--runs", help="Remove .lab/runs/.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove generated files or run directories."""
    from opslab.lab import clean_project

    def body() -> dict[str, Any]:
        removed = clean_project(Path("."), init=init_files, runs=runs)
        if not as_json:
            console.print(f"removed: {', '.join(removed) or 'nothing'}")
        return {"removed": removed}

    _emit("clean", as_json, body)
