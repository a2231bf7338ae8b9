"""``opslab canary run|history`` and ``opslab sandbox up``."""

from __future__ import annotations

import json
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from opslab.cli.context import JsonOption, console, print_json, settings

canary_app = typer.Typer(help="A/B canary experiments on a live service.", no_args_is_help=True)
sandbox_app = typer.Typer(
    help="The sandbox services the canary (and responder) act on.", no_args_is_help=True
)
DEFAULT_PLAN = Path("examples/canary/plan_combo.yaml")


def _plan_path(config: Path | None) -> Path:
    if config is not None:
        return config
    if DEFAULT_PLAN.is_file():
        return DEFAULT_PLAN
    return Path(str(resources.files("opslab.canary") / "plan_combo.yaml"))


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
    as_json: JsonOption = False,
) -> None:
    """Plan → health gate → ABAB load → judge → apply on PASS → report (reports/LABOPS_AGENT_SUMMARY.txt)."""
    from opslab.canary import HttpTarget, load_plan, run_canary

    plan = load_plan(_plan_path(config))
    history_path = settings().data_dir / "canary" / "history.jsonl"
    if dry_run:
        e = plan.experiment
        info = {
            "dry_run": True,
            "target": plan.target.base_url,
            "candidate_flags": plan.candidate_flags(),
            "windows": 2 * e.rounds,
            "window_sec": e.window_sec,
            "qps": e.qps,
            "planned_seconds": plan.planned_seconds(),
            "time_budget": plan.time_budget,
            "thresholds": plan.thresholds.model_dump(),
            "would": [
                f"check health at {plan.target.health_path}",
                "read the current flags (A)",
                f"run {e.rounds} ABAB round(s) of {e.window_sec:g}s at {e.qps:g} QPS "
                f"on {plan.target.request_path}",
                "restore A, judge ΔP95 / error rate",
                "apply B only on PASS",
                f"write {reports_dir}/",
            ],
        }
        if as_json:
            print_json(info)
        else:
            console.print(
                f"[bold]dry run[/bold]: nothing will be sent or changed\n{json.dumps(info, indent=2)}"
            )
        return
    target = HttpTarget(plan.target)
    cancel = threading.Event()
    holder: dict[str, Any] = {}

    def work() -> None:
        holder["result"] = run_canary(
            plan,
            target,
            reports_dir=reports_dir,
            history_path=history_path,
            cancel=cancel,
            progress=lambda step, pct, msg: (
                None if as_json else console.print(f"[{pct:3.0f}%] {step}: {msg}", highlight=False)
            ),
        )

    thread = threading.Thread(target=work, name="canary")
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        cancel.set()  # the agent stops after the current window, restores the flags, writes a partial report
        console.print("interrupted: restoring flags and writing a partial report…")
        thread.join()
    finally:
        target.close()
    result = holder.get("result")
    if result is None:
        raise typer.Exit(1)
    if as_json:
        print_json({k: v for k, v in result.items() if k != "plan"})
    else:
        console.print(Path(result["summary_path"]).read_text(), highlight=False, markup=False)
    if result.get("blocked"):
        raise typer.Exit(3)


@canary_app.command("history")
def show_history(limit: Annotated[int, typer.Option(min=1)] = 20, as_json: JsonOption = False) -> None:
    """Past canary runs, newest last."""
    from opslab.canary import history

    rows = history.read(settings().data_dir / "canary" / "history.jsonl")[-limit:]
    if as_json:
        print_json(rows)
        return
    table = Table()
    for col in ("finished", "decision", "ΔP95", "error", "applied", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        d = r.get("delta_p95_pct")
        table.add_row(
            str(r.get("finished_at", ""))[:19],
            str(r.get("decision")),
            "—" if d is None else f"{d:+.1f}%",
            f"{r.get('error_rate_pct') or 0:.2f}%",
            "yes" if r.get("applied") else "no",
            str(r.get("reason", ""))[:80],
        )
    console.print(table)


@sandbox_app.command("up")
def up(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Target service port.")] = 8100,
    seed: Annotated[int, typer.Option(help="Seed of the latency and error model.")] = 42,
    base_median_ms: Annotated[float, typer.Option(min=0.1, help="Median latency at neutral flags.")] = 20.0,
    sigma: Annotated[float, typer.Option(min=0.01, max=3.0, help="Log-normal shape of the latency.")] = 0.35,
) -> None:
    """Run the sandbox target service (flags, health, search endpoint, Prometheus metrics)."""
    import uvicorn

    from opslab.sandbox import LatencyModel, create_target_app

    model = LatencyModel(base_median_ms=base_median_ms, sigma=sigma)
    console.print(
        f"sandbox target on http://{host}:{port} (seed {seed}, median {base_median_ms:g} ms, σ {sigma:g})"
    )
    uvicorn.run(
        create_target_app(seed=seed, model=model), host=host, port=port, log_level="warning", access_log=False
    )
