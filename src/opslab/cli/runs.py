"""``opslab runs …`` and ``opslab metrics …``: ingest files, show runs, replay timelines, fleet metrics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from opslab.cli.context import JsonOption, UrlOption, console, err_console, print_json, settings
from opslab.cli.sources import BadLine, read_items
from opslab.cli.tables import Column, WideOption, print_table
from opslab.errors import InvalidInput

if TYPE_CHECKING:
    from opslab.cli.backend import TelemetryBackend
    from opslab.config import Settings

runs_app = typer.Typer(help="Agent runs: ingest, show, list, replay.", no_args_is_help=True)
metrics_app = typer.Typer(help="Fleet metrics.", no_args_is_help=True)

BATCH = 500
# telemetry.schema.RunStatus, spelled here so that starting the CLI does not build the telemetry models
# (a tenth of a second on every command); a unit test keeps the two equal.
RunStatusChoice = Literal["success", "failure", "running", "timeout", "cancelled"]


def _run_filter(status: str | None, agent_name: str | None, environment: str | None) -> Any:
    from opslab.telemetry import RunFilter

    return RunFilter(status=status, agent_name=agent_name, environment=environment)


def open_backend(url: str | None, s: Settings) -> TelemetryBackend:
    from opslab.cli.backend import open_backend as open_  # httpx and the store: only for these commands

    return open_(url, s)


@runs_app.command("ingest")
def ingest(
    source: Annotated[str, typer.Argument(metavar="FILE|-", help="JSON object, JSON array or JSON Lines.")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest agent runs from a file or stdin (upsert by run_id)."""
    backend = open_backend(url, settings())
    total_bytes = max(1, Path(source).stat().st_size) if source != "-" and Path(source).is_file() else None
    created = updated = 0
    failures: list[dict[str, Any]] = []
    index = 0
    batch: list[Any] = []
    batch_index: list[int] = []

    def flush() -> None:
        nonlocal created, updated
        if not batch:
            return
        result = backend.ingest_batch(list(batch)).model_dump(mode="json")
        for item in result["results"]:
            if item["status"] == "created":
                created += 1
            elif item["status"] == "updated":
                updated += 1
            else:
                failures.append(
                    {
                        "item": batch_index[item["index"]] + 1,
                        "run_id": item.get("run_id"),
                        "error": item.get("error"),
                    }
                )
        batch.clear()
        batch_index.clear()

    # A file is read as bytes (its size is the total); stdin has no size: the bar counts its items.
    progress = Progress(
        TextColumn("ingest"),
        BarColumn(),
        DownloadColumn() if total_bytes is not None else MofNCompleteColumn(),
        TextColumn("read") if total_bytes is not None else TextColumn("items"),
        TimeRemainingColumn(),
        console=err_console.rich,
        transient=True,
        disable=as_json,
    )
    try:
        with progress:
            task = progress.add_task("ingest", total=total_bytes)
            for done, item in read_items(source):
                if isinstance(item, BadLine):
                    failures.append(
                        {
                            "item": index + 1,
                            "line": item.lineno,
                            "error": {
                                "code": "invalid_input",
                                "message": f"line {item.lineno}: {item.message}",
                            },
                        }
                    )
                else:
                    batch.append(item)
                    batch_index.append(index)
                    if len(batch) >= BATCH:
                        flush()
                index += 1
                progress.update(task, completed=done if total_bytes is not None else index)
            flush()
    finally:
        backend.close()
    failures.sort(key=lambda f: int(f["item"]))
    summary = {"created": created, "updated": updated, "failed": len(failures), "failures": failures[:50]}
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"ingested {created + updated} run(s): {created} created, {updated} updated, "
            f"{len(failures)} failed"
        )
        for f in failures[:20]:
            who = escape(str(f.get("run_id") or ""))
            fields = ((f["error"] or {}).get("details") or {}).get("errors") or []
            if len(fields) > 1:  # every field the item got wrong, not the first and "and N more"
                err_console.print(f"  [red]item {f['item']}[/red] {who}:", soft_wrap=True)
                for e in fields:
                    field = re.sub(
                        r"^\[\d+\]\.?", "", str(e.get("field"))
                    )  # the batch's index, not the file's
                    err_console.print(f"    {escape(field)}: {escape(str(e.get('message')))}", soft_wrap=True)
            else:
                err_console.print(
                    f"  [red]item {f['item']}[/red] {who}: {escape(f['error']['message'])}", soft_wrap=True
                )
        if len(failures) > 20:
            err_console.print(f"  … {len(failures) - 20} more failed item(s): --json lists up to 50")
    if failures:
        raise typer.Exit(InvalidInput.exit_code)


@runs_app.command("show")
def show(run_id: str, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Run metadata with counts."""
    backend = open_backend(url, settings())
    try:
        run = backend.get_run(run_id).model_dump(mode="json")
    finally:
        backend.close()
    if as_json:
        print_json(run)
        return
    table = Table(show_header=False, box=None)
    for key in (
        "run_id",
        "agent_name",
        "agent_version",
        "model",
        "environment",
        "status",
        "started_at",
        "ended_at",
        "error_type",
        "error_message",
        "trace_id",
        "total_cost_usd",
        "source",
    ):
        if run.get(key) is not None:
            table.add_row(f"[bold]{key}[/bold]", str(run[key]))
    counts = run["counts"]
    table.add_row("[bold]counts[/bold]", ", ".join(f"{k}={v}" for k, v in counts.items()))
    console.print(table)


@runs_app.command("export")
def export(
    run_id: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it here (default: standard output).")
    ] = None,
    fmt: Annotated[
        Literal["json", "otlp"],
        typer.Option(
            "--format", help="json: the run and all kept for it; otlp: its spans, for any OTLP backend."
        ),
    ] = "json",
    url: UrlOption = None,
) -> None:
    """Take a run out whole, to share or move it (JSON, or OTLP that any OpenTelemetry backend takes)."""
    import json

    backend = open_backend(url, settings())
    try:
        data = backend.export_run(run_id, format=fmt)
    finally:
        backend.close()
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        print_json(data)
        return
    output.write_text(text + "\n", encoding="utf-8")
    err_console.print(f"wrote {output} ({len(text)} bytes)")


@runs_app.command("delete")
def delete(run_id: str, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Delete a run with everything kept for it (steps, calls, scores, RCA reports, its trace's spans)."""
    backend = open_backend(url, settings())
    try:
        backend.delete_run(run_id)
    finally:
        backend.close()
    if as_json:
        print_json({"deleted": run_id})
    else:
        console.print(f"deleted run {escape(run_id)}")


@runs_app.command("prune")
def prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Delete the runs started longer ago: 30d, 12h, 2w.")
    ],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retention: delete every run started more than --older-than ago, with all kept for each."""
    backend = open_backend(url, settings())
    try:
        result = backend.prune_runs(older_than)
    finally:
        backend.close()
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        console.print(f"deleted {result.deleted} run(s) started more than {older_than} ago")


_STATUS_STYLE = {"failure": "red", "timeout": "red", "triggered": "yellow", "success": "green"}


@runs_app.command("timeline")
def timeline(
    run_id: str, url: UrlOption = None, as_json: JsonOption = False, wide: WideOption = False
) -> None:
    """Replay a run: steps, tool calls and guardrail events in time order."""
    backend = open_backend(url, settings())
    try:
        data = backend.timeline(run_id).model_dump(mode="json")
    finally:
        backend.close()
    if as_json:
        print_json(data)
        return
    rows: list[list[str]] = []
    for i, item in enumerate(data["items"], start=1):
        style = _STATUS_STYLE.get(item["status"], "")
        rows.append(
            [
                str(i),
                (item["started_at"] or "")[11:19],
                item["kind"],
                item["id"],
                escape(item["name"]),
                f"[{style}]{item['status']}[/{style}]" if style else item["status"],
                item["step_id"] or "",
                escape((item["summary"] or "")[:120]),
            ]
        )
    print_table(
        [
            Column("#", whole=True, justify="right"),
            Column("at", whole=True),
            Column("kind", whole=True),
            Column("id", key=True),
            Column("name"),
            Column("status", whole=True),
            Column("step", key=True, drop=1),
            Column("summary"),
        ],
        rows,
        title=f"timeline of {escape(run_id)}",
        wide=wide,
    )


@runs_app.command("list")
def list_runs(
    status: Annotated[RunStatusChoice | None, typer.Option(help="Only runs with this status.")] = None,
    agent_name: Annotated[str | None, typer.Option("--agent", help="Only this agent.")] = None,
    environment: Annotated[str | None, typer.Option(help="Only this environment.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page.")] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Most recent runs first."""
    backend = open_backend(url, settings())
    try:
        page = backend.list_runs(
            _run_filter(status, agent_name, environment),
            cursor=cursor,
            limit=limit,
        ).model_dump(mode="json")
    finally:
        backend.close()
    if as_json:
        print_json(page)
        return
    print_table(
        [
            Column("run_id", key=True),
            Column("agent", drop=2),
            Column("version", drop=4),
            Column("env", drop=5),
            Column("status", whole=True),
            Column("started_at", whole=True, drop=1),
            Column("steps", drop=6, justify="right"),
            Column("failed tools", drop=3, justify="right"),
        ],
        [
            [
                r["run_id"],
                escape(r["agent_name"]),
                escape(r["agent_version"] or ""),
                escape(r["environment"] or ""),
                r["status"],
                r["started_at"][:19],
                str(r["counts"]["steps"]),
                str(r["counts"]["failed_tool_calls"]),
            ]
            for r in page["items"]
        ],
        wide=wide,
    )
    if page.get("next_cursor"):
        console.print(f"more: --cursor {page['next_cursor']}")


@metrics_app.command("overview")
def overview(
    hours: Annotated[int, typer.Option(min=1, help="Window: runs started in the last N hours.")] = 24,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Total runs, success rate, top failing tools, p95 step latency, cost."""
    backend = open_backend(url, settings())
    try:
        data = backend.overview(hours).model_dump(mode="json")
    finally:
        backend.close()
    if as_json:
        print_json(data)
        return
    table = Table(title=f"last {hours} h", show_header=False)
    table.add_row("total runs", str(data["total_runs"]))
    rate = data["success_rate"]
    table.add_row("success rate", "—" if rate is None else f"{rate:.2f} %")
    p95 = data["p95_step_latency_ms"]
    table.add_row("p95 step latency", "—" if p95 is None else f"{p95:.0f} ms")
    table.add_row("total cost", f"${data['total_cost_usd']:.4f}")
    tools = ", ".join(f"{t['tool']} ({t['count']})" for t in data["top_failing_tools"]) or "none"
    table.add_row("top failing tools", tools)
    console.print(table)


@runs_app.command("import")
def import_runs(
    path: Annotated[Path, typer.Argument(help="A trajectory file or folder.")],
    fmt: Annotated[
        str, typer.Option("--format", help="tau-bench | magentic | who-and-when | opslab")
    ] = "tau-bench",
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Turn agent transcripts (τ-bench, Magentic-One, Who&When-style, opslab run JSON) into runs: messages
    become steps."""
    from opslab.telemetry import FORMATS
    from opslab.telemetry import import_runs as read_runs

    if fmt not in FORMATS:
        raise InvalidInput.for_field("--format", f"{fmt!r}: expected one of {', '.join(FORMATS)}")
    runs = [r.model_dump(mode="json") for r in read_runs(fmt, path)]
    backend = open_backend(url, settings())
    try:
        results = [
            backend.ingest_batch(runs[i : i + BATCH]).model_dump(mode="json")
            for i in range(0, len(runs), BATCH)
        ]
    finally:
        backend.close()
    ok = sum(r["ok"] for r in results)
    failed = sum(r["failed"] for r in results)
    if as_json:
        print_json({"format": fmt, "runs": len(runs), "ok": ok, "failed": failed})
    else:
        console.print(f"imported {ok} run(s) from {path} ({fmt}); {failed} failed")
    if failed:
        raise typer.Exit(InvalidInput.exit_code)
