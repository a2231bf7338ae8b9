"""The demo: the five capabilities, each shown against the real service on the embedded default (SQLite,
in-process jobs) and the sandbox world, then a summary table. A step that fails is reported and the
next still runs; the demo succeeds only if every step did what it says."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opslab import proc
from opslab.api import ServerThread, create_app, free_port
from opslab.client import OpslabClient
from opslab.config import Settings, process_environment
from opslab.demo import steps
from opslab.errors import OpslabError
from opslab.proc import Child

__all__ = ["StepOutcome", "run_demo"]


@dataclass
class StepOutcome:
    capability: str
    ok: bool
    result: str
    seconds: float
    where: str


def _sandbox(settings: Settings, log: Path) -> tuple[Child, str]:
    """The sandbox world (target, dependency, chaos and action servers) under the demo's data dir; the
    service's responder finds it through ``sandbox/endpoints.json``, never the chaos server."""
    ports = {part: free_port() for part in ("target", "dependency", "chaos", "actions")}
    argv = [sys.executable, "-m", "opslab", "sandbox", "up", "--port", str(ports["target"])]
    argv += ["--dependency-port", str(ports["dependency"]), "--chaos-port", str(ports["chaos"])]
    argv += ["--actions-port", str(ports["actions"])]
    endpoints = settings.data_dir / "sandbox" / "endpoints.json"
    endpoints.unlink(missing_ok=True)
    env = {**process_environment(), "OPSLAB_DATA_DIR": str(settings.data_dir)}
    child = proc.spawn(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    steps.wait_until("the sandbox", lambda: endpoints.is_file() or not child.alive, 30, 0.1)
    if not child.alive:
        raise OpslabError(f"the sandbox did not start: {log.read_text()[-500:]}")
    return child, f"http://127.0.0.1:{ports['chaos']}"


def _demo_settings(settings: Settings, workdir: Path) -> Settings:
    """The responder on (a 1 s poll, the default autonomy: no action waits for a human), and the demo's
    lab project among the dashboard's experiment folders."""
    return settings.model_copy(
        update={
            "responder_enabled": True,
            "responder_poll_interval_s": 1.0,
            "responder_settle_s": 3.0,
            "lab_runs_dirs": [*settings.lab_runs_dirs, workdir / "lab-demo"],
        }
    )


def _run_step(console: Console, capability: str, title: str, step: Callable[[], steps.Shown]) -> StepOutcome:
    console.rule(f"[bold]{capability}[/bold]: {title}")
    t0 = time.monotonic()
    try:
        shown = step()
    except Exception as exc:  # noqa: BLE001 - a failed step is reported; the next one still runs
        message = exc.message if isinstance(exc, OpslabError) else f"{type(exc).__name__}: {exc}"
        console.print(f"[bold red]FAILED[/bold red] {message}")
        return StepOutcome(capability, False, f"FAILED: {message}", time.monotonic() - t0, "")
    console.print(f"[green]ok[/green] {shown.result}", highlight=False)
    return StepOutcome(capability, True, shown.result, time.monotonic() - t0, shown.where)


def _summary(console: Console, outcomes: list[StepOutcome], url: str, total: float) -> None:
    table = Table(
        title=f"opslab demo: {sum(o.ok for o in outcomes)}/{len(outcomes)} steps ok in {total:.0f} s"
    )
    table.add_column("capability", no_wrap=True)
    table.add_column("result", overflow="fold")
    table.add_column("time", no_wrap=True, justify="right")
    for o in outcomes:
        mark = "[green]ok[/green]" if o.ok else "[red]FAILED[/red]"
        table.add_row(o.capability, f"{mark} {escape(o.result)}", f"{o.seconds:.1f} s")
    console.print(table)
    # Links and paths whole, one per line (a table column would cut them on a narrow terminal).
    console.print("[bold]where to look[/bold]")
    for o in [*outcomes, StepOutcome("dashboard", True, "", 0, f"{url}/ui")]:
        if o.where:
            console.print(f"  {o.capability}: {escape(o.where)}", soft_wrap=True, highlight=False)


def _stopped_note(console: Console) -> None:
    """The links above point at the service the demo has just stopped: say how to keep it up."""
    opslab = Path(sys.executable).parent / "opslab"
    try:
        shown = f"{opslab.relative_to(Path.cwd())}"
    except ValueError:
        shown = str(opslab)
    console.print(
        "The service these links point at has stopped with the demo. To browse them, run the demo with "
        f"the service kept up (Ctrl-C stops it):\n  {escape(shown)} demo --keep-running",
        soft_wrap=True,
        highlight=False,
    )


def run_demo(
    settings: Settings, console: Console, *, port: int | None = None, keep_running: bool = False
) -> bool:
    """Run the five steps; True when every one did what it says."""
    started = time.monotonic()
    workdir = settings.data_dir / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    console.print("starting the sandbox world and the service (SQLite, in-process jobs) …")
    sandbox, chaos = _sandbox(settings, workdir / "sandbox.log")
    chaos_token = (settings.data_dir / "sandbox" / "chaos-token").read_text().strip()
    with sandbox:
        demo = _demo_settings(settings, workdir)
        with (
            ServerThread(create_app(demo), port=port) as server,
            OpslabClient.from_settings(demo, server.url) as c,
        ):
            url = server.url
            console.print(f"opslab service on {url} (data in {settings.data_dir.resolve()})")
            plan: list[tuple[str, str, Callable[[], steps.Shown]]] = [
                ("RCA", "ingest the seed's runs, both RCA workflows, a real multi-agent transcript",
                 lambda: steps.telemetry_and_rca(c, console, url)),
                ("lab", "examples/lab-python: a harness over tasks × 2 variants × 3 replications",
                 lambda: steps.lab(console, workdir, url)),
                ("canary", "a flag change judged by ABAB windows on a sandbox target",
                 lambda: steps.canary(c, console, url)),
                ("responder", "the sandbox's db pool broken through the chaos server; the responder alone",
                 lambda: steps.responder(c, console, chaos, chaos_token, url)),
                ("autoops", "simulated builds: the optimizer learns, the responder suggests fixes",
                 lambda: steps.autoops(c, console, url)),
            ]  # fmt: skip
            outcomes = [_run_step(console, *p) for p in plan]
            _summary(console, outcomes, url, time.monotonic() - started)
            (workdir / "summary.json").write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
            if keep_running:
                console.print(f"the service keeps running: {url}/ui (Ctrl-C stops it)")
                try:
                    while not threading.Event().wait(3600):
                        pass
                except KeyboardInterrupt:
                    console.print("stopping")
    console.rule("done: the service and the sandbox stopped cleanly")
    if not keep_running:
        _stopped_note(console)
    return all(o.ok for o in outcomes)
