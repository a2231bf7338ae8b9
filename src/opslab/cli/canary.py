"""``opslab canary run|sweep|history`` (the sandbox they run against: ``cli/sandbox.py``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.markup import escape

from opslab.cli.canary_live import RunDisplay, echo_unwrapped, run_in_thread, stop_on_signals
from opslab.cli.context import JsonOption, console, err_console, local_runtime, print_json, settings
from opslab.cli.tables import Column, WideOption, print_table

if TYPE_CHECKING:
    from opslab import canary

canary_app = typer.Typer(help="A/B canary experiments on a live service.", no_args_is_help=True)
DEFAULT_PLAN = Path("examples/canary/plan_combo.yaml")
T = TypeVar("T")


def _plan_path(config: Path | None) -> Path:
    if config is not None:
        return config
    if DEFAULT_PLAN.is_file():
        return DEFAULT_PLAN
    return Path(str(resources.files("opslab.canary") / "plan_combo.yaml"))


def _target(plan: canary.Plan) -> tuple[canary.HttpTarget, canary.RunSecrets]:
    from opslab import canary
    from opslab.config import process_environment

    secrets = canary.resolve_secrets(plan, process_environment())
    return canary.HttpTarget(plan.target, secrets, seed=plan.seed), secrets


@contextmanager
def _held(
    plan: canary.Plan, target: canary.TargetClient, stop: canary.Stop
) -> Iterator[tuple[canary.GuardedTarget, canary.HistoryIndex]]:
    """The target held for this run in this data dir's database (shared with the service when it is the
    same database): a canary that dies is put back by whoever looks next. A lapsed hold stops the run."""
    import uuid

    rt = local_runtime()
    try:
        with rt.canary_hold(plan, target, run_key=uuid.uuid4().hex[:12]) as held:
            done = threading.Event()

            def watch() -> None:
                while not done.wait(0.2):
                    if held.lost.is_set():
                        stop.stop("its hold on the target lapsed")
                        return

            threading.Thread(target=watch, daemon=True, name="canary-hold").start()
            try:
                yield held, rt.canary_index
            finally:
                done.set()
    finally:
        rt.close()


@canary_app.command("run")
def run(
    config: Annotated[
        Path | None, typer.Option("--config", help="Plan YAML (default: examples/canary/plan_combo.yaml).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; send no load, change no flag.")
    ] = False,
    reports_dir: Annotated[Path, typer.Option("--reports-dir", help="Where the summary goes.")] = Path(
        "reports"
    ),
    url: Annotated[
        str | None,
        typer.Option("--url", help="Run it as a job of the opslab service at URL and follow its progress."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Plan → health gate → ABAB load → judge → apply on PASS → report (reports/LABOPS_AGENT_SUMMARY.txt).

    Exit codes: 0 PASS, 10 EDGE, 11 FAIL, 12 blocked by the health gate, 13 baseline NOT restored,
    130 / 143 interrupted (SIGINT / SIGTERM; the baseline restored), 2 a bad plan, 5 another canary
    holds the target (docs/canary.md lists them all)."""
    from opslab import canary

    plan = canary.load_plan(_plan_path(config))
    if url:
        from opslab.cli.canary_remote import run_remote

        raise typer.Exit(run_remote(plan, url, dry_run=dry_run, as_json=as_json))
    if dry_run:
        info = canary.dry_run(plan, reports_dir).model_dump(mode="json")
        if as_json:
            print_json(info)
        else:
            console.print(
                f"[bold]dry run[/bold]: nothing will be sent or changed\n{json.dumps(info, indent=2)}",
                soft_wrap=True,
            )
        return
    target, secrets = _target(plan)
    stop = canary.Stop()
    display = RunDisplay((err_console if as_json else console).rich, enabled=not as_json)

    def work(held: canary.TargetClient, index: canary.HistoryIndex) -> canary.CanaryResult:
        return canary.run_canary(
            plan,
            held,
            reports_dir=reports_dir,
            history_path=canary.history_file(settings().data_dir),
            index=index,
            cancel=stop,
            progress=display.step,
            watch=display.watch,
            secrets=secrets,
        )

    try:
        with (
            stop_on_signals(stop, lambda m: err_console.print(m, soft_wrap=True)) as received,
            display,
            _held(plan, target, stop) as (held, index),
        ):
            result = run_in_thread(lambda: work(held, index), display.refresh)
    finally:
        target.close()
    if as_json:
        print_json(canary.RunRecord.of(result).model_dump(mode="json"))
    elif result.summary_path:
        echo_unwrapped(Path(result.summary_path).read_text())
    code = canary.exit_code_of(result.decision, blocked=result.blocked, restore_failed=result.restore_failed)
    if code == canary.EXIT_INTERRUPTED and received:
        code = 128 + received[0]  # 130 for SIGINT, 143 for SIGTERM
    raise typer.Exit(code)


@canary_app.command("sweep")
def sweep(
    space: Annotated[Path, typer.Option("--space", help="Flag space YAML (`params:` choices or ranges).")],
    trials: Annotated[int, typer.Option("--trials", min=1, max=500, help="Canaries to run.")] = 10,
    config: Annotated[
        Path | None, typer.Option("--config", help="Plan YAML: target, windows, thresholds, seed.")
    ] = None,
    reports_dir: Annotated[Path, typer.Option("--reports-dir", help="Where the reports go.")] = Path(
        "reports"
    ),
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget", min=1, help="Seconds for the whole sweep (default: plan's × (trials+1))."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Optuna (TPE, seeded) over the flag space; each point a judged canary; the best PASS is confirmed by
    one more canary and only then applied."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from opslab import canary

    plan = canary.load_plan(_plan_path(config))
    spec = canary.load_space(space, plan.experiment)
    target, secrets = _target(plan)
    cancel = canary.Stop()
    bar = Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        console=err_console.rich,
        disable=as_json,
    )
    task = bar.add_task("sweep", total=trials, note="")

    def work(held: canary.TargetClient, index: canary.HistoryIndex) -> canary.SweepResult:
        return canary.run_sweep(
            plan,
            spec,
            held,
            trials=trials,
            reports_dir=reports_dir,
            history_path=canary.history_file(settings().data_dir),
            index=index,
            time_budget=time_budget,
            cancel=cancel,
            progress=lambda done, total, note: bar.update(task, completed=done, note=note),
            secrets=secrets,
        )

    try:  # on Ctrl-C the running canary restores its flags, and nothing is applied
        with (
            stop_on_signals(cancel, lambda m: err_console.print(m, soft_wrap=True)),
            bar,
            _held(plan, target, cancel) as (held, index),
        ):
            result = run_in_thread(lambda: work(held, index), lambda: None)
    finally:
        target.close()
    if as_json:
        print_json(result.model_dump(mode="json"))
    elif result.report_path:
        console.print(Path(result.report_path).read_text(), highlight=False, markup=False)


@canary_app.command("history")
def show_history(
    limit: Annotated[int, typer.Option(min=1)] = 20, as_json: JsonOption = False, wide: WideOption = False
) -> None:
    """Past canary runs, newest last."""
    from opslab import canary

    rows = canary.read_history(canary.history_file(settings().data_dir))[-limit:]
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    print_table(
        [
            Column("finished", whole=True),
            Column("decision", whole=True),
            Column("ΔP95", whole=True, justify="right"),
            Column("error", whole=True, drop=2, justify="right"),
            Column("applied", whole=True, drop=1),
            Column("reason"),
        ],
        [
            [
                r.finished_at.isoformat()[:19] if r.finished_at else "",
                r.decision,
                "—" if (d := r.delta_p95_pct) is None else f"{d:+.1f}%",
                f"{r.error_rate_pct or 0:.2f}%",
                "yes" if r.applied else "no",
                escape(r.reason[:80]),
            ]
            for r in rows
        ],
        wide=wide,
    )


@canary_app.command("cancel")
def cancel(
    canary_run_id: Annotated[str, typer.Argument(help="The id `opslab canary run --url` printed.")],
    url: Annotated[str | None, typer.Option("--url", help="Service URL (default: OPSLAB_URL).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a canary run of the service: it stops like a Ctrl-C (the baseline flags are restored)."""
    from opslab.client import OpslabClient

    if not (url or settings().url):
        from opslab.errors import InvalidInput

        raise InvalidInput.for_field("--url", "canary runs of a service: pass --url or set OPSLAB_URL")
    with OpslabClient.from_settings(settings(), url) as client:
        view = client.cancel_canary(canary_run_id)
    if as_json:
        print_json(view.model_dump(mode="json"))
        return
    console.print(f"canary run {canary_run_id}: {view.status} ({view.message})")


@canary_app.command("recover")
def recover(
    target_url: Annotated[
        str | None, typer.Option("--target", help="Only this target (its base URL); default: every one.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Put back the baseline flags of targets whose canary died mid-run (its process provably gone: at once;
    else once its hold lapsed), each with an INTERRUPTED history row. The service does it by itself too."""
    from opslab import canary

    rt = local_runtime()
    try:
        name = canary.lease_name(target_url) if target_url else None
        done = rt.recover_canaries(name=name)
    finally:
        rt.close()
    if as_json:
        print_json([r.model_dump(mode="json") for r in done])
        return
    if not done:
        console.print("nothing to recover: no canary died holding a target")
    for r in done:
        state = "restored" if r.restored else "[red]NOT restored[/red]"
        console.print(f"{r.target}: canary {r.run_key} ({r.abandoned_by}) died; baseline flags {state}")
    if any(not r.restored for r in done):
        raise typer.Exit(canary.EXIT_NOT_RESTORED)
