"""An id in an ``opslab`` table is printed whole on one line at any terminal width; the other columns give
way, optional ones first; ``--wide`` shows them all."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from rich.console import Console

from opslab.cli.tables import Column, print_table

ROOT = Path(__file__).resolve().parents[2]
LONG = "run-with-a-rather-long-identifier-0042"
COLUMNS = [
    Column("run_id", key=True),
    Column("agent", drop=2),
    Column("version", drop=3),
    Column("status", whole=True),
    Column("started_at", whole=True, drop=1),
]
ROWS = [
    [LONG, "customer-support-agent", "2.1.0", "failure", "2024-01-15T10:30:00"],
    ["run-001-sufficient", "customer-support-agent", "2.1.0", "success", "2024-01-15T10:30:00"],
]


def render(
    width: int, *, wide: bool = False, columns: list[Column] = COLUMNS, rows: list[list[str]] = ROWS
) -> str:
    out = io.StringIO()
    print_table(columns, rows, wide=wide, out=Console(file=out, width=width, color_system=None))
    return out.getvalue()


@pytest.mark.parametrize("width", [30, 60, 80, 120, 200])
def test_an_id_is_whole_on_one_line_at_any_width(width: int) -> None:
    text = render(width)
    assert LONG in text and "run-001-sufficient" in text
    assert "…" not in text


def test_optional_columns_give_way_highest_drop_first() -> None:
    assert "version" in render(200)
    narrow = render(80)
    assert "version" not in narrow and "agent" not in narrow
    assert "started_at" in narrow and "2024-01-15T10:30:00" in narrow
    assert max(len(line) for line in narrow.splitlines()) <= 80


def test_wide_shows_every_column_whatever_the_width() -> None:
    text = render(60, wide=True)
    for header in ("run_id", "agent", "version", "status", "started_at"):
        assert header in text
    assert "customer-support-agent" in text


def test_an_id_is_never_read_as_markup() -> None:
    text = render(120, rows=[["[bold]run[/bold]-x", "a", "1", "ok", "t"]])
    assert "[bold]run[/bold]-x" in text


def test_ids_wider_than_the_terminal_still_print_whole() -> None:
    columns = [Column("a", key=True), Column("b", key=True)]
    text = render(50, columns=columns, rows=[["a" * 40, "b" * 40]])
    assert "a" * 40 in text and "b" * 40 in text


# Tables in the CLI that hold no id: key/value listings and figures.
WITHOUT_IDS = {
    "runs.py": {"show", "overview"},
    "lab.py": {"describe"},
    "rca.py": {"_eval_table"},
    "lab_analysis.py": {"_print_comparison"},
}


def test_every_cli_table_with_ids_goes_through_print_table() -> None:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "src/opslab/cli").glob("*.py")):
        if path.name == "tables.py":
            continue
        tree = ast.parse(path.read_text())
        for fn in tree.body:  # top-level functions: a command and the helpers it calls
            if isinstance(fn, ast.FunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Table":
                        found.setdefault(path.name, set()).add(fn.name)
    # A new table is either print_table's or, holding no id, named here.
    assert {name: fns - WITHOUT_IDS.get(name, set()) for name, fns in found.items()} == {
        name: set() for name in found
    }
