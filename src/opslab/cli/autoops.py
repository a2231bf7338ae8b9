"""``opslab autoops run|serve|suggest|import|status``: the seed's single demo, its continuous mode on port
9000, the fix responder asked directly, and builds from a real CI's history."""

from __future__ import annotations

import json
import secrets
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from opslab.cli.context import JsonOption, console, err_console, local_runtime, print_json, settings

if TYPE_CHECKING:
    from opslab.autoops import FixSuggestion
    from opslab.config import Settings
    from opslab.runtime import Runtime

MAX_PROBLEMS = 50  # bad fields named by a refused import (the count says how many lines were bad)

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
    return local_runtime(s)


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
            if p.responder.nearest is not None:
                responder["nearest"] = _nearest(p.responder)
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


@autoops_app.command("suggest")
def suggest(
    error: Annotated[list[str], typer.Argument(help="The failed build's error text (words are joined).")],
    error_class: Annotated[
        str | None,
        typer.Option(
            "--error-class",
            help="The CI's own classification: oom, image_pull, dependency_resolution, flaky_test, timeout.",
            show_default=False,
        ),
    ] = None,
    log_file: Annotated[
        Path | None,
        typer.Option("--log", help="The build log; its last 20 lines are searched too.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The fix responder, asked directly (POST /suggest_fix's answer): the runbook's fix and its steps, or
    "no known fix" with the nearest document as context when nothing covers the error surely enough."""
    from pydantic import ValidationError

    from opslab.autoops import FixRequest
    from opslab.errors import InvalidInput, invalid_from_pydantic

    logs: list[str] = []
    if log_file is not None:
        try:
            logs = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
        except OSError as exc:
            raise InvalidInput.for_field("--log", f"cannot read {log_file}: {exc}") from None
    try:
        request = FixRequest.model_validate(
            {"error": " ".join(error), "error_class": error_class, "logs": logs}
        )
    except ValidationError as exc:
        raise invalid_from_pydantic(list(exc.errors(include_url=False))) from None
    rt = _runtime()
    try:
        fix = rt.autoops().suggest(request)
    finally:
        rt.close()
    if as_json:
        print_json(fix.model_dump(mode="json"))
        return
    if fix.outcome != "fix":
        console.print(escape(fix.suggestion), highlight=False, soft_wrap=True)
        if fix.nearest is not None:
            console.print(f"nearest, not a fix: {escape(_nearest(fix))}", highlight=False, soft_wrap=True)
        return
    console.print(
        f"{escape(fix.suggestion)}  [dim]({escape(str(fix.document_id))}, confidence "
        f"{fix.confidence if fix.confidence is not None else 0:.2f})[/dim]",
        highlight=False,
        soft_wrap=True,
    )
    for n, step in enumerate(fix.actions, start=1):
        note = f" ({step.note})" if step.note else ""
        console.print(f"  {n}. {escape(step.text + note)}", highlight=False, soft_wrap=True)


def _nearest(fix: FixSuggestion) -> str:
    """The nearest document of a "no known fix", in one line: context, not a fix."""
    n = fix.nearest
    if n is None:
        return ""
    return (
        f"{n.document_id} ({n.title!r}: score {n.score:.2f}, confidence {n.confidence:.2f} "
        f"< {n.min_confidence:.2f})"
    )


@autoops_app.command("import")
def import_builds(
    file: Annotated[
        Path, typer.Argument(help="JSON lines: one finished build per line (POST /builds's body).")
    ],
    as_json: JsonOption = False,
) -> None:
    """Teach the optimizer from a real CI's history. Every line is checked first; a bad line refuses the
    file and nothing is stored: each bad line is named (FILE:LINE: field: reason), exit code 2."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from opslab.autoops import BuildIn, BuildResult
    from opslab.errors import InvalidInput, invalid_from_pydantic

    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput.for_field("FILE", f"cannot read {file}: {exc}") from None
    builds: list[BuildIn] = []
    problems: list[dict[str, Any]] = []  # every field of every bad line, each with its line

    def problem(n: int, field: str, message: str) -> dict[str, Any]:
        # The plain-text report prints fields, not lines: there the field says where ("FILE:3: duration").
        return {"field": field if as_json else f"{file}:{n}: {field}", "message": message, "line": n}

    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            build = BuildIn.model_validate_json(line)
        except ValidationError as exc:
            found = invalid_from_pydantic(list(exc.errors(include_url=False))).details["errors"]
            problems.extend(problem(n, p["field"], p["message"]) for p in found)
            continue
        if build.status == "failed" and not build.error:
            problems.append(problem(n, "error", "a failed build needs its error text"))
            continue
        builds.append(build)
    if problems:
        first, bad = problems[0], sorted({p["line"] for p in problems})
        where = f"{file}:{first['line']}: " if as_json else ""  # in plain text the field says it
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidInput(
            f"{where}{first['field']}: {first['message']}{more}",
            details={"errors": problems[:MAX_PROBLEMS], "line": bad[0], "lines": bad[:MAX_PROBLEMS]},
        )
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
    rt = _runtime()
    try:
        auto = rt.autoops()
        counts = auto.builds.count()
        best = auto.figures.best()  # what /metrics reports as autoops_optimizer_confidence
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
