"""``opslab sandbox scenarios`` and ``opslab sandbox chaos-suite``: the chaos scenarios, and every one of
them run against the blind responder and scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from opslab.cli.context import JsonOption, console, err_console, print_json, settings
from opslab.cli.sandbox import sandbox_app
from opslab.cli.tables import Column, print_table

if TYPE_CHECKING:
    from opslab.sandbox import ScenarioScore


@sandbox_app.command("scenarios")
def scenarios(
    folder: Annotated[
        Path | None, typer.Option(help="A folder of scenario YAML files (default: the packaged ones).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The chaos scenarios and what a responder is expected to find and do."""
    from opslab.sandbox import load_scenarios

    found = load_scenarios(folder)
    if as_json:
        print_json([s.model_dump(mode="json", by_alias=True) for s in found])
        return
    print_table(
        [
            Column("name", key=True),
            Column("faults"),
            Column("category"),
            Column("remediations", drop=1),
            Column("control", whole=True, drop=2),
        ],
        [
            [
                s.name,
                escape(", ".join(s.faults)),
                escape(s.expected.category),
                escape(", ".join(s.expected.remediations)),
                "yes" if s.expected.control else "",
            ]
            for s in found
        ],
    )


@sandbox_app.command("chaos-suite")
def chaos_suite(
    repeat: Annotated[int, typer.Option(min=1, max=50, help="Run every scenario this many times.")] = 1,
    poll_interval: Annotated[
        float, typer.Option(min=0.2, max=60, help="The responder's poll interval, in seconds.")
    ] = 1.0,
    drills: Annotated[
        bool, typer.Option("--drills", help="Also run the escalation drills (faults no action can hold).")
    ] = False,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="Only this scenario (repeatable).")
    ] = None,
    file: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            help="A chaostoolkit experiment file to run (repeatable); alone, only these run. Its HTTP "
            "actions must break a fault on the chaos server (`<any host>/api/v1/break/<fault>`).",
        ),
    ] = None,
    beside: Annotated[
        str,
        typer.Option(
            help="What runs beside each fault: none, canary (the target's own A/B load), burst (5x "
            "traffic), kill_switch (the responder halted for 10 s), repeat (the fault again once fixed)."
        ),
    ] = "none",
    out: Annotated[Path | None, typer.Option(help="Also write the JSON result to this file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every chaos scenario against the blind responder on a world of its own (free ports), scored by
    each scenario's hidden key: detected, time to detect, diagnosis, resolved, time to recover, actions."""
    from opslab.errors import InvalidInput
    from opslab.sandbox import BESIDE

    if beside not in BESIDE:
        raise InvalidInput.for_field("--beside", f"{beside!r}: expected one of {', '.join(BESIDE)}")
    import tempfile

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from opslab.sandbox import run_suite, suite_scenarios

    chosen = suite_scenarios(drills=drills, only=scenario, files=file)
    data_dir = settings().data_dir / "chaos-suite"
    data_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=data_dir))
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console.rich,
        transient=True,
    )
    with bar:
        task = bar.add_task("chaos suite", total=len(chosen) * repeat)

        def progress(name: str, score: ScenarioScore | None) -> None:
            if score is None:
                bar.update(task, description=f"chaos suite: {name}")
                return
            bar.advance(task)
            mark = "[green]ok[/]" if score.outcome_correct and not score.false_actions else "[red]miss[/]"
            bar.console.print(
                f"{mark} {score.name:<22} {score.outcome:<10} diagnosis {'/'.join(score.diagnosis) or '-'}"
                f"  actions {', '.join(score.action_names) or '-'}",
                highlight=False,
            )

        result = run_suite(
            work,
            poll_interval_s=poll_interval,
            repeat=repeat,
            scenarios=chosen,
            progress=progress,
            beside=beside,  # checked against BESIDE above
        )
    data = result.model_dump(mode="json")
    if out is not None:
        out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if as_json:
        print_json(data)
        return
    print_table(
        [
            Column("scenario", key=True),
            Column("fault", drop=2),
            Column("detected", whole=True, drop=3),
            Column("MTTD s", whole=True, justify="right"),
            Column("diagnosis", whole=True),
            Column("outcome", whole=True),
            Column("MTTR s", whole=True, justify="right"),
            Column("actions", drop=1),
            Column("false", whole=True, justify="right", drop=4),
        ],
        [
            [
                s.name,
                escape(s.fault),
                "yes" if s.detected else "no",
                f"{s.mttd_s:.1f}" if s.mttd_s is not None else "-",
                ("[green]" if s.diagnosis_correct else "[red]")
                + escape("/".join(s.diagnosis) or "-")
                + "[/]",
                ("[green]" if s.outcome_correct else "[red]") + escape(s.outcome) + "[/]",
                f"{s.mttr_s:.1f}" if s.mttr_s is not None else "-",
                escape(", ".join(s.action_names) or "-"),
                str(s.false_actions),
            ]
            for s in result.scenarios
        ],
    )
    m = result.summary
    console.print(
        f"resolved {m.resolved_rate:.0%} · diagnosis {m.diagnosis_rate:.0%} · "
        f"detected {m.detected_rate:.0%} · false actions {m.false_actions} · "
        f"median MTTD {m.median_mttd_s} s · median MTTR {m.median_mttr_s} s",
        highlight=False,
    )
