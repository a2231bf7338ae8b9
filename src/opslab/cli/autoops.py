"""``opslab autoops run|serve|import|status``: the seed's single demo, its continuous mode on port 9000,
and builds from a real CI's history."""

from __future__ import annotations

import json
import secrets
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from opslab.cli.context import JsonOption, console, err_console, print_json, settings

if TYPE_CHECKING:
    from opslab.config import Settings
    from opslab.runtime import Runtime

autoops_app = typer.Typer(
    help="Build pipeline agents: monitor, configuration optimizer, fix responder, controller.",
    no_args_is_help=True,
)


class OptimizerName(StrEnum):
    bandit = "bandit"
    dqn = "dqn"


OptimizerOption = Annotated[
    OptimizerName | None,
    typer.Option(
        "--optimizer",
        help="What chooses the configurations: bandit (contextual Thompson sampling) or dqn (the seed's "
        "Stable-Baselines3 DQN, about 60x the CPU; pip install 'opslab\\[dqn]'). Default: "
        "OPSLAB_AUTOOPS_OPTIMIZER (bandit).",
        show_default=False,
    ),
]


def _runtime(s: Settings | None = None) -> Runtime:
    from opslab.runtime import Runtime

    return Runtime.build(s or settings(), migrate=True)


def _with_optimizer(s: Settings, optimizer: OptimizerName | None) -> Settings:
    """The settings with the chosen optimizer, refused in one line when its extra is missing."""
    from opslab.autoops import DQN_HINT, dqn_available
    from opslab.errors import InvalidInput

    kind = optimizer.value if optimizer is not None else s.autoops_optimizer
    if kind == "dqn" and not dqn_available():
        field = "--optimizer" if optimizer is not None else "OPSLAB_AUTOOPS_OPTIMIZER"
        raise InvalidInput.for_field(field, DQN_HINT)
    return s.model_copy(update={"autoops_optimizer": kind})


def _seed_repr(data: dict[str, Any]) -> str:
    # The seed prints Python dicts: [Monitor]  -> {'status': 'failed', 'duration': 2.34, 'error': '…'}
    return repr(data)


@autoops_app.command("run")
def run(
    builds: Annotated[int, typer.Option(min=1, max=10_000, help="Pipeline passes to run.")] = 1,
    optimizer_name: OptimizerOption = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=2**31 - 1,
            help="Seed of this run's simulated builds: the same seed (from the same learned state) replays "
            "them. Default: OPSLAB_AUTOOPS_SEED when set, else a fresh one, printed on stderr.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """One pass of the pipeline (or --builds N): a build on the simulated CI runner, the optimizer's next
    configuration, and on failure the responder's fix; prints the seed's three lines per pass. Each run
    draws new builds (see --seed); what the optimizer learned carries over from run to run."""
    s = _with_optimizer(settings(), optimizer_name)
    if seed is None:
        seed = s.autoops_seed if "autoops_seed" in s.model_fields_set else secrets.randbelow(2**31)
        err_console.print(f"seed {seed} (--seed {seed} replays these builds)", highlight=False)
    rt = _runtime(s.model_copy(update={"autoops_seed": seed}))
    try:
        auto = rt.autoops()
        passes = [auto.run_once() for _ in range(builds)]
    finally:
        rt.close()
    if as_json:
        print_json([p.model_dump(mode="json") for p in passes])
        return
    for p in passes:
        optimizer = {
            "action_id": p.optimizer.action_id,
            "action_description": p.optimizer.action_description,
            "confidence": round(p.optimizer.confidence, 3),
        }
        if p.responder is not None:
            responder: dict[str, Any] = {
                "suggestion": p.responder.suggestion,
                "source": p.responder.document_id,
            }
        else:
            responder = {"suggestion": None, "reason": "the build succeeded"}
        console.print(f"[Monitor]  -> {escape(_seed_repr(p.monitor))}", highlight=False, soft_wrap=True)
        console.print(f"[Optimizer] -> {escape(_seed_repr(optimizer))}", highlight=False, soft_wrap=True)
        console.print(f"[Responder] -> {escape(_seed_repr(responder))}", highlight=False, soft_wrap=True)


@autoops_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port (the seed's 9000).")] = 9000,
    loop_builds: Annotated[
        int,
        typer.Option(min=0, max=1_000_000, help="Start the continuous loop with this build budget (0: off)."),
    ] = 0,
    interval: Annotated[
        float, typer.Option(min=0, max=3600, help="Seconds between two builds of the loop.")
    ] = 1.0,
    optimizer: OptimizerOption = None,
) -> None:
    """The continuous mode: the service (the seed's routes, /metrics for Prometheus) on the seed's port,
    optionally running the build loop at once; POST /autoops/loop starts and stops it later."""
    import uvicorn

    from opslab.api import create_app

    app = create_app(_with_optimizer(settings(), optimizer))
    if loop_builds:
        original = app.router.lifespan_context

        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def with_loop(a: Any) -> Any:
            async with original(a) as state:
                app.state.services["autoops"].handle.start(loop_builds, interval)
                yield state

        app.router.lifespan_context = with_loop
    console.print(
        f"autoops on http://{host}:{port} (POST /simulate_build, GET /get_best_action, POST /suggest_fix)"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@autoops_app.command("import")
def import_builds(
    file: Annotated[
        Path, typer.Argument(help="JSON lines: one finished build per line (POST /builds's body).")
    ],
    as_json: JsonOption = False,
) -> None:
    """Teach the optimizer from a real CI's history. Every line is checked first; one bad line refuses the
    file (naming the line and field) and nothing is stored."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from opslab.autoops import BuildIn, BuildResult
    from opslab.errors import InvalidInput, invalid_from_pydantic

    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput.for_field("FILE", f"cannot read {file}: {exc}") from None
    builds: list[BuildIn] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            builds.append(BuildIn.model_validate_json(line))
        except ValidationError as exc:
            err = invalid_from_pydantic(list(exc.errors(include_url=False)))
            raise InvalidInput(f"{file}:{n}: {err.message}", details={"line": n, **err.details}) from None
        if builds[-1].status == "failed" and not builds[-1].error:
            raise InvalidInput(f"{file}:{n}: error: a failed build needs its error text", details={"line": n})
    rt = _runtime()
    try:
        auto = rt.autoops()
        with Progress(
            TextColumn("importing builds"), BarColumn(), MofNCompleteColumn(), transient=True
        ) as bar:
            task = bar.add_task("import", total=len(builds))
            for b in builds:
                failed = b.status == "failed"
                result = BuildResult(
                    status=b.status,
                    duration=b.duration,
                    error=b.error if failed else None,
                    error_class=b.error_class if failed else None,
                )
                auto.record(config=b.config, context=b.context, result=result, source="ci")
                bar.advance(task)
        counts = auto.builds.count()
    finally:
        rt.close()
    if as_json:
        print_json({"imported": len(builds), "builds": counts})
    else:
        console.print(f"imported {len(builds)} builds; kept: {json.dumps(counts)}")


@autoops_app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Builds kept, by status, and the optimizer's best configuration for a default pipeline."""
    from opslab.autoops import BuildContext

    rt = _runtime()
    try:
        auto = rt.autoops()
        counts = auto.builds.count()
        best = auto.best(BuildContext())
    finally:
        rt.close()
    data = {"builds": counts, "best_action": best.model_dump(mode="json")}
    if as_json:
        print_json(data)
        return
    console.print(f"builds: {json.dumps(counts)}")
    console.print(
        f"best for a default pipeline: #{best.action_id} {escape(best.action_description)} "
        f"(confidence {best.confidence:.2f})"
    )
