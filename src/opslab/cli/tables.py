"""Tables whose ids a user can copy: an id column is printed whole, on one line, whatever the terminal's
width; the other columns give way (text folds), and optional ones are left out on a narrow terminal
(``--wide`` shows every column at its natural width, ``--json`` everything).

Every ``opslab`` table with an id goes through ``print_table``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from opslab.cli.context import console as default_console

WideOption = Annotated[
    bool, typer.Option("--wide", help="Every column at its full width, even past the terminal's edge.")
]
Cell = str | Text
# The narrowest a folding column may become and still say something; and the width it should keep
# before optional columns give way to it.
_FOLDED_MIN = 5
_FOLDED_COMFORT = 12


@dataclass(frozen=True)
class Column:
    """``key``: an id a user copies, whole on one line and never read as markup. ``whole``: a short cell
    (a time, a status, a number) that stays on one line. ``drop``: 0 is always shown; on a narrow
    terminal the highest ``drop`` goes first."""

    header: str
    key: bool = False
    whole: bool = False
    drop: int = 0
    justify: Literal["left", "right", "center"] = "left"


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    wide: bool = False,
    out: Console | None = None,
) -> None:
    """Print ``rows`` under ``columns``; markup in a non-key ``str`` cell is rendered, a key cell is
    plain text."""
    out = out or default_console.rich
    shown = list(range(len(columns)))
    if not wide:
        # Leave optional columns out, the highest ``drop`` first, until the rest fits comfortably.
        for index in sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop):
            if _least_width(columns, rows, shown, _FOLDED_COMFORT) <= out.width:
                break
            shown.remove(index)
    table = Table(title=title)
    for index in shown:
        column = columns[index]
        if column.key or column.whole:
            width = max([len(column.header), *(_text(row[index], column).cell_len for row in rows)])
            table.add_column(column.header, no_wrap=True, min_width=width, justify=column.justify)
        else:
            table.add_column(column.header, overflow="fold", justify=column.justify)
    for row in rows:
        table.add_row(*(_text(row[i], columns[i]) for i in shown))
    natural = Measurement.get(out, out.options.update(width=100_000), table).maximum
    if not (wide or _least_width(columns, rows, shown, _FOLDED_MIN) > out.width):
        out.print(table)
        return
    # Past the terminal's edge rather than cut an id: the terminal wraps the long lines.
    width = out.width
    out.width = max(natural, width)
    try:
        out.print(table)
    finally:
        out.width = width


def _least_width(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], shown: list[int], folded: int
) -> int:
    """How wide the table is with each key and whole column at its longest cell, every other column
    folded to ``folded`` characters (or its longest cell, when shorter)."""
    total = 3 * len(shown) + 1  # a vertical line between and around the columns, one space each side
    for index in shown:
        column = columns[index]
        longest = max([len(column.header), *(_text(row[index], column).cell_len for row in rows)])
        total += longest if column.key or column.whole else min(longest, folded)
    return total


def _text(cell: Cell, column: Column) -> Text:
    if isinstance(cell, Text):
        return cell
    return Text(cell) if column.key else Text.from_markup(cell)
