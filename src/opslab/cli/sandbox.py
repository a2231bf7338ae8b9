"""``opslab sandbox up|target|dependency|chaos|actions|scenarios``: the demo world, whole or one part."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from opslab.cli.context import console, settings

if TYPE_CHECKING:
    pass

sandbox_app = typer.Typer(help="The sandbox world the canary and the responder act on.", no_args_is_help=True)

HostOption = Annotated[str, typer.Option(help="Interface to bind.")]
TokenFileOption = Annotated[
    Path | None,
    typer.Option("--token-file", help="The admin token (default: <data dir>/sandbox/sandbox-token)."),
]
SeedOption = Annotated[int, typer.Option(help="Seed of the latency and error model.")]
MedianOption = Annotated[float, typer.Option(min=0.1, help="Median search latency at neutral flags.")]
SigmaOption = Annotated[float, typer.Option(min=0.01, max=3.0, help="Log-normal shape of the latency.")]
TrafficOption = Annotated[
    float, typer.Option(min=0, max=1000, help="Background orders per second the target serves (0: none).")
]
WindowOption = Annotated[
    float, typer.Option(min=0.1, max=600, help="Seconds of the sliding window of /api/v1/metrics.")
]
HeadroomOption = Annotated[
    float, typer.Option(min=1, help="Memory limit of the target: its resident set at start plus this (MB).")
]


def _token(path: Path | None, default: Path, option: str = "--token-file") -> str:
    from opslab.sandbox import read_token

    return read_token(path or default, option=option)


def _interrupt_on_sigterm() -> None:
    """SIGTERM stops the world as Ctrl-C does (children stopped, not orphaned)."""

    def interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@sandbox_app.command("up")
def up(
    only: Annotated[
        str, typer.Option(help="Parts to start, comma-separated: target,dependency,chaos,actions.")
    ] = "target,dependency,chaos,actions",
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Target port (0: a free one).")] = 8100,
    dependency_port: Annotated[int, typer.Option(min=0, max=65535, help="Dependency port.")] = 8101,
    chaos_port: Annotated[int, typer.Option(min=0, max=65535, help="Chaos server port.")] = 8180,
    actions_port: Annotated[int, typer.Option(min=0, max=65535, help="Action server port.")] = 8190,
    seed: SeedOption = 42,
    base_median_ms: MedianOption = 20.0,
    sigma: SigmaOption = 0.35,
    traffic_rps: TrafficOption = 20.0,
    window_s: WindowOption = 5.0,
    memory_headroom_mb: HeadroomOption = 150.0,
) -> None:
    """Run the sandbox world (target, dependency, chaos server, action server) until Ctrl-C; files in
    <data dir>/sandbox/ (tokens, endpoints.json, audit.jsonl, logs)."""
    from opslab.sandbox import TargetOptions, World, WorldPorts

    _interrupt_on_sigterm()
    world = World.start(
        settings().data_dir,
        ports=WorldPorts(port, dependency_port, chaos_port, actions_port),
        only=only,
        host=host,
        target=TargetOptions(
            seed=seed,
            base_median_ms=base_median_ms,
            sigma=sigma,
            traffic_rps=traffic_rps,
            window_s=window_s,
            memory_headroom_mb=memory_headroom_mb,
        ),
    )
    try:
        for part in world.parts:
            console.print(f"sandbox {part:<10} {world.url(part)}", highlight=False)
        console.print(
            f"files in {world.files.root} (endpoints.json, chaos-token, action-token, sandbox-token, "
            "audit.jsonl, logs/); "
            f"target: seed {seed}, median {base_median_ms:g} ms, σ {sigma:g}, {traffic_rps:g} orders/s. "
            "Ctrl-C stops.",
            highlight=False,
        )
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping the sandbox…")
    finally:
        world.stop()


@sandbox_app.command("target")
def target(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8100,
    state_dir: Annotated[
        Path | None, typer.Option(help="Deploy and flags state (default: <data dir>/sandbox/target).")
    ] = None,
    dependency_url: Annotated[
        str, typer.Option("--dependency-url", "--pricing-url", help="The pricing service (its dependency).")
    ] = "http://127.0.0.1:8101",
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="Admin token file (without one: admin routes closed).")
    ] = None,
    seed: SeedOption = 42,
    base_median_ms: MedianOption = 20.0,
    sigma: SigmaOption = 0.35,
    traffic_rps: TrafficOption = 20.0,
    window_s: WindowOption = 5.0,
    memory_headroom_mb: HeadroomOption = 150.0,
) -> None:
    """Run the target alone in the foreground (search and canary routes, orders, health, admin)."""
    from opslab.sandbox import LatencyModel, OpsOptions, SandboxFiles, create_target_app, read_token, run_app

    ops = OpsOptions(
        state_dir=state_dir or SandboxFiles.under(settings().data_dir).target_dir,
        dependency_url=dependency_url.rstrip("/"),
        token=read_token(token_file) if token_file else None,
        traffic_rps=traffic_rps,
        window_s=window_s,
        memory_headroom_mb=memory_headroom_mb,
        seed=seed,
    )
    model = LatencyModel(base_median_ms=base_median_ms, sigma=sigma)
    console.print(f"sandbox target on http://{host}:{port} (seed {seed}, {traffic_rps:g} orders/s)")
    app = create_target_app(seed=seed, model=model, ops=ops)
    run_app(app, host, port, tokens={"target's admin routes": ops.token})


@sandbox_app.command("dependency")
def dependency(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8101,
    token_file: TokenFileOption = None,
) -> None:
    """Run the pricing service alone in the foreground."""
    from opslab.sandbox import SandboxFiles, create_dependency_app, run_app

    token = _token(token_file, SandboxFiles.under(settings().data_dir).sandbox_token)
    console.print(f"sandbox dependency on http://{host}:{port}")
    run_app(create_dependency_app(token=token), host, port, tokens={"dependency's admin routes": token})


@sandbox_app.command("chaos")
def chaos(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8180,
    target_url: Annotated[str, typer.Option(help="The target.")] = "http://127.0.0.1:8100",
    dependency_url: Annotated[str, typer.Option(help="The dependency.")] = "http://127.0.0.1:8101",
    token_file: TokenFileOption = None,
    chaos_token_file: Annotated[
        Path | None,
        typer.Option(
            help="This server's bearer token (default: <data dir>/sandbox/chaos-token, made if absent)."
        ),
    ] = None,
) -> None:
    """Run the chaos server alone in the foreground; every call needs Authorization: Bearer <chaos-token>."""
    from opslab.sandbox import SandboxFiles, create_chaos_app, ensure_token, run_app

    files = SandboxFiles.under(settings().data_dir)
    token = _token(token_file, files.sandbox_token)
    chaos_token = (
        _token(chaos_token_file, files.chaos_token, "--chaos-token-file")
        if chaos_token_file
        else (ensure_token(files.chaos_token))
    )
    console.print(
        f"sandbox chaos server on http://{host}:{port} (token in {chaos_token_file or files.chaos_token})"
    )
    app = create_chaos_app(
        target_url=target_url.rstrip("/"),
        dependency_url=dependency_url.rstrip("/"),
        token=token,
        chaos_token=chaos_token,
    )
    run_app(app, host, port, tokens={"chaos server": chaos_token})


@sandbox_app.command("actions")
def actions(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8190,
    target_url: Annotated[str, typer.Option(help="The target.")] = "http://127.0.0.1:8100",
    token_file: TokenFileOption = None,
    action_token_file: Annotated[
        Path | None, typer.Option(help="The bearer token (default: <data dir>/sandbox/action-token).")
    ] = None,
    audit_file: Annotated[
        Path | None, typer.Option(help="The audit (default: <data dir>/sandbox/audit.jsonl).")
    ] = None,
) -> None:
    """Run the action server alone in the foreground (restarts need `sandbox up`: they answer an error)."""
    from opslab.sandbox import SandboxFiles, create_action_app, run_app

    files = SandboxFiles.under(settings().data_dir)
    action_token = _token(action_token_file, files.action_token, "--action-token-file")
    app = create_action_app(
        target_url=target_url.rstrip("/"),
        sandbox_token=_token(token_file, files.sandbox_token),
        action_token=action_token,
        audit_path=audit_file or files.audit,
    )
    console.print(f"sandbox action server on http://{host}:{port}")
    run_app(app, host, port, tokens={"action server": action_token})
