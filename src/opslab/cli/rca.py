"""``opslab rca …``: start and read RCAs of the service, and fit and score the transcript localiser on
labelled runs (``train``, ``eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from opslab.cli.context import JsonOption, ServiceUrlOption, console, err_console, print_json, settings
from opslab.cli.tables import Column, print_table
from opslab.errors import InvalidInput, OperationFailed

if TYPE_CHECKING:
    from opslab.client import OpslabClient
    from opslab.rca import Labelled

rca_app = typer.Typer(
    help="Root-cause analysis of agent runs: run, show and cancel act on a running service (--url or "
    "OPSLAB_URL), where RCA runs as a job; train and eval work on files.",
    no_args_is_help=True,
)
FORMAT_HELP = "tau-bench | magentic | who-and-when | opslab (run JSON, as `opslab runs ingest` takes)"
FormatOption = Annotated[str, typer.Option("--format", help=FORMAT_HELP)]
TruthOption = Annotated[
    Path | None,
    typer.Option(
        "--ground-truth",
        help="Labels: AgentRx ground truth, or [{trajectory_id|run_id, step, agent}]; default: the labels "
        "the runs carry (who-and-when files, runs with attributes.annotated).",
    ),
]
PathArgument = Annotated[Path, typer.Argument(help="The runs: a file or a folder.")]


def _client(url: str | None) -> OpslabClient:
    from opslab.client import OpslabClient  # httpx, imported by the commands that talk HTTP

    if not (url or settings().url):
        raise InvalidInput.for_field(
            "--url", "RCA runs as a job of the service: pass --url or set OPSLAB_URL"
        )
    return OpslabClient.from_settings(settings(), url)


@rca_app.command("run")
def rca_run(
    run_id: str,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the progress stream until the report is ready.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Start a new RCA even if one of this content exists.")] = False,
    url: ServiceUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start an RCA of RUN_ID as a job of the service at --url (idempotent); with --wait, show its progress
    and print the report. The run must be in that service (`opslab runs ingest FILE --url URL`)."""
    with _client(url) as client:
        created = client.create_rca(run_id, force=force)
        if not wait:
            if as_json:
                print_json(created.model_dump(mode="json"))
            else:
                console.print(f"rca_run_id {created.rca_run_id} ({created.status})")
            return
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            console=err_console.rich,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("queued", total=100)
            for event in client.stream_rca(created.rca_run_id):
                bar.update(task, completed=event.pct, description=event.step)
        view = client.get_rca(created.rca_run_id).model_dump(mode="json")
    _show(view, as_json)
    if view["status"] in ("failed", "crashed", "cancelled"):
        raise typer.Exit(OperationFailed.exit_code)


@rca_app.command("show")
def rca_show(rca_run_id: str, url: ServiceUrlOption = None, as_json: JsonOption = False) -> None:
    """An RCA run's status and report, from the service at --url."""
    with _client(url) as client:
        view = client.get_rca(rca_run_id).model_dump(mode="json")
    _show(view, as_json)


@rca_app.command("cancel")
def rca_cancel(rca_run_id: str, url: ServiceUrlOption = None, as_json: JsonOption = False) -> None:
    """Cancel an RCA run of the service: queued ones end at once, a running one at its next heartbeat."""
    with _client(url) as client:
        view = client.cancel_rca(rca_run_id).model_dump(mode="json")
    _show(view, as_json)


def _show(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(view)
        return
    console.print(
        f"[bold]RCA {view['rca_run_id']}[/bold] of {view['run_id']}: {view['status']} ({view['step']})"
    )
    report = view.get("report")
    if not report:
        if view.get("error"):
            err_console.print(f"error: {view['error'].get('message')}")
        return
    console.print(
        f"outcome: {report.get('outcome', 'failed')}   category: [bold]{report['category']}[/bold]   "
        f"confidence: {report['confidence']}   insufficient evidence: {report['insufficient_evidence']}"
    )
    by_model = " [dim](the model's words, each sentence citing evidence)[/dim]"
    console.print(escape(report["summary"]) + (by_model if report.get("summary_by") == "model" else ""))
    if report.get("root_cause"):
        rc = report["root_cause"]
        step = report.get("root_cause_step") or rc["step_id"]
        who = report.get("responsible_agent") or rc["agent"]
        p = report.get("step_probability")
        odds = f", p={p:.2f}" if p is not None else ""
        console.print(f"root cause: step {step} by {who}{odds} — cites {', '.join(rc['evidence_ids'])}")
    for link in report.get("causal_chain") or []:
        where = f"step {link['step_id']}: " if link.get("step_id") else ""
        console.print(f"  {link['role']:>11} {where}{escape(link['says'])} ({link['evidence_id']})")
    for h in report.get("handled") or []:
        console.print(f"  handled: {escape(h['what'])} — {escape(h['how'])} ({h['evidence_id']})")
    for alt in report.get("alternatives") or []:
        console.print(f"  alternative: step {alt['step']} by {alt['agent']} (p={alt['probability']:.2f})")
    if report["evidence_index"]:
        print_table(
            [Column("id", key=True), Column("title"), Column("snippet", drop=1)],
            [
                [ev["evidence_id"], escape(ev["title"]), escape(ev["snippet"][:100])]
                for ev in report["evidence_index"]
            ],
            title="evidence",
        )
    for h in report["hypotheses"]:
        console.print(
            f"• [bold]{escape(h['title'])}[/bold] ({h['confidence']}"
            f"{', model' if h.get('source') == 'llm' else ''}): cites {', '.join(h['evidence_ids'])}"
        )
    for a in report["action_items"]:
        console.print(f"→ {escape('[' + a['priority'] + ']')} {a['title']}: {a['description']}")
    if report.get("insufficient_reason"):
        console.print(f"insufficient: {report['insufficient_reason']}")


def _labelled(fmt: str, path: Path, ground_truth: Path | None) -> Labelled:
    from opslab.rca import read_labelled
    from opslab.telemetry import FORMATS

    if fmt not in FORMATS:
        raise InvalidInput.for_field("--format", f"{fmt!r}: expected one of {', '.join(FORMATS)}")
    return read_labelled(fmt, path, ground_truth)


@rca_app.command("train")
def rca_train(
    path: PathArgument,
    out: Annotated[Path, typer.Option("--out", help="Where to write the fitted model (JSON).")],
    fmt: FormatOption = "opslab",
    ground_truth: TruthOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fit the transcript localiser to your own labelled runs and write it to --out.

    Use it with `opslab rca eval --model`, or in the service with OPSLAB_RCA_MODEL. Runs of two or more
    agent systems (agent_name) are calibrated leaving one system out, else on held-out folds.
    """
    from opslab.rca import train_localizer

    labelled = _labelled(fmt, path, ground_truth)
    with _bar(as_json) as bar:
        reading = bar.add_task("signals", total=len(labelled.runs))
        fitting = bar.add_task("fit and calibrate", total=None)

        class _Progress:
            def read(self, run_id: str) -> None:
                bar.advance(reading)

            def planned(self, fits: int) -> None:
                bar.update(fitting, total=fits)

            def fitted(self, what: str) -> None:
                bar.update(fitting, advance=1, description=what)

        summary = train_localizer(labelled, out, progress=_Progress())
    if as_json:
        print_json(summary.model_dump())
        return
    console.print(
        f"fitted on {summary.fitted_on} of {summary.runs} run(s) ({summary.labelled} labelled; systems: "
        f"{', '.join(f'{k} {v}' for k, v in summary.systems.items())}); calibration: {summary.calibration}; "
        f"abstains below {summary.abstain_below:.2f}"
    )
    console.print(f"wrote {escape(summary.out)}: use it with `opslab rca eval --model` or OPSLAB_RCA_MODEL")


@rca_app.command("eval")
def rca_eval(
    path: PathArgument,
    fmt: FormatOption = "tau-bench",
    ground_truth: TruthOption = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="A model written by `opslab rca train` (default: the shipped one)."),
    ] = None,
    cv: Annotated[
        int | None,
        typer.Option(
            "--cv", help="Also cross-validate: refit the localiser K times (0: leave-one-out).", min=0
        ),
    ] = None,
    ablation: Annotated[
        bool, typer.Option("--ablation", help="Cross-validated figures without each signal, one at a time.")
    ] = False,
    llm: Annotated[
        str | None,
        typer.Option(
            "--llm",
            help="Localise with the configured LLM too (OPENAI_API_KEY or OPSLAB_LLM_BASE_URL): all_at_once "
            "| step_by_step | binary_search, the localiser's ranking as its prior.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run RCA over every labelled run and score the decisive step and agent against the labels.

    The headline figures use the shipped localiser, or --model. The shipped one was fitted on the AgentRx
    dev set, so its figures there are in-sample; --cv and --ablation refit it without the runs they score.
    """
    from opslab.rca import evaluate_labelled, load_localizer

    localizer = load_localizer(model)
    labelled = _labelled(fmt, path, ground_truth)
    enhance = _llm_localizer(llm) if llm is not None else None
    with _bar(as_json) as bar:
        task = bar.add_task("RCA", total=len(labelled.runs))
        result = evaluate_labelled(labelled, localizer, enhance=enhance, tick=lambda _: bar.advance(task))
        out: dict[str, Any] = {
            **result.headline(),
            "method": localizer.meta.get("method"),
            "model": str(model) if model else "shipped",
        }
        if llm is not None:
            out["llm"] = llm
        if cv is not None or ablation:
            out |= _cross_validated(labelled, cv, ablation, bar)
    if as_json:
        print_json(out)
        return
    _eval_table(out, result.headline(), fmt)
    if result.missing:
        err_console.print(f"{len(result.missing)} labelled run(s) had no transcript")


def _cross_validated(labelled: Labelled, cv: int | None, ablation: bool, bar: Progress) -> dict[str, Any]:
    from opslab.rca import ablation as ablate
    from opslab.rca import cross_validated, examples_of

    examples = examples_of(labelled.runs, labelled.truth, labelled.fmt)
    k = cv if cv is not None else 10
    out: dict[str, Any] = {
        "cross_validated": {
            "folds": k or len(examples),
            **cross_validated(examples, labelled.truth, k).model_dump(),
        }
    }
    if ablation:
        kinds = bar.add_task("ablation", total=len({s.kind for e in examples for s in e.signals}))
        figs = ablate(examples, labelled.truth, k, tick=lambda kind: bar.advance(kinds))
        out["ablation"] = {kind: f.model_dump() for kind, f in figs.items()}
    return out


def _eval_table(out: dict[str, Any], headline: dict[str, Any], fmt: str) -> None:
    # The model is a path a user may copy: on its own line, never folded into a table's title.
    console.print(f"model: {escape(str(out['model']))}", soft_wrap=True)
    table = Table(title=f"RCA on {headline['n']} {fmt} runs ({out['method']})")
    table.add_column("measure")
    table.add_column("localiser", justify="right")
    crossed = out.get("cross_validated")
    if crossed:
        table.add_column(f"cross-validated ({crossed['folds']} folds)", justify="right")
    for key, value in headline.items():
        cells = [f"{value:.1%}" if isinstance(value, float) else str(value)]
        if crossed:
            v = crossed[key]
            cells.append(f"{v:.1%}" if isinstance(v, float) else str(v))
        table.add_row(key, *cells)
    console.print(table)
    if out.get("ablation") and crossed:
        abl = Table(title="ablation: cross-validated, without one signal (change in points)")
        for col in ("signal", "step", "step ±1", "agent"):
            abl.add_column(col, justify="right" if col != "signal" else "left")
        for kind, f in sorted(out["ablation"].items()):
            abl.add_row(
                kind,
                *(
                    f"{100 * (f[m] - crossed[m]):+.1f}"
                    for m in ("step_accuracy", "step_accuracy_pm1", "agent_accuracy")
                ),
            )
        console.print(abl)


def _llm_localizer(strategy: str) -> Any:
    from opslab.llm import ChatClient
    from opslab.rca import STRATEGIES, LlmLocalizer

    if strategy not in STRATEGIES:
        raise InvalidInput.for_field("--llm", f"{strategy!r}: expected one of {', '.join(STRATEGIES)}")
    chat = ChatClient.from_settings(settings())
    if chat is None:
        raise InvalidInput.for_field(
            "--llm", "needs an LLM: set OPENAI_API_KEY, or OPSLAB_LLM_BASE_URL (and OPSLAB_LLM_MODEL)"
        )
    return LlmLocalizer(chat, strategy)


def _bar(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console.rich,
        disable=quiet or not err_console.is_terminal,
        transient=True,
    )
