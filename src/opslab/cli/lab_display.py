"""What `opslab lab run` shows a person: a progress bar of trials, then the run's table."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from opslab.cli.context import console, err_console, escape

if TYPE_CHECKING:
    from rich.progress import Progress

    from opslab.lab import LabProgress, LabRun


class TrialProgress:
    """A Rich progress bar of trials on stderr (human mode, on a terminal); entering gives its callback.
    Without one to show (JSON mode, or not a terminal) Rich is not loaded."""

    def __init__(self, as_json: bool) -> None:
        self.bar: Progress | None = None
        if as_json or not sys.stderr.isatty():
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TimeRemainingColumn(),
            console=err_console.rich,
        )
        self.task = self.bar.add_task("trials", total=None, failed=0)

    def __enter__(self) -> Callable[[LabProgress], None]:
        bar = self.bar
        if bar is None:
            return _ignore
        bar.__enter__()

        def on_progress(p: LabProgress) -> None:
            bar.update(self.task, completed=p.done, total=p.total, failed=p.failed)

        return on_progress

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _ignore(p: LabProgress) -> None:
    """No bar to move (JSON mode, or not a terminal): a run of many quick trials calls this per trial."""


def print_run(run: LabRun, report_url: str | None) -> None:
    from opslab.cli.tables import Column, print_table

    # The run id on a line of its own: a user copies it (`--resume RUN_ID`), and a title may be wrapped.
    console.print(f"run {escape(run.run_id)}", soft_wrap=True, highlight=False)
    rows = []
    for vid, v in run.variants.items():
        lo, hi = v.success_ci
        rate = "—" if v.success_rate is None else f"{v.success_rate:.1%}"
        rows.append([vid, str(v.n), rate, f"{lo:.1%} – {hi:.1%}", str(v.errors)])
    print_table(
        [
            Column("variant", key=True),
            Column("n", whole=True, justify="right"),
            Column("success", whole=True, justify="right"),
            Column("95% CI", whole=True, drop=1),
            Column("errors", whole=True, justify="right"),
        ],
        rows,
    )
    console.print(f"artifacts: {run.run_dir}")
    if run.report_failures:
        err_console.print(
            f"[yellow]warning[/yellow]: {run.report_failures} trial(s) not reported to {report_url}: "
            f"{run.report_error}"
        )
    if run.reported:
        console.print(f"reported {run.reported} trial(s) as agent runs to {report_url}")
