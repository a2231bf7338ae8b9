"""Every ``opslab …`` command in the README's and docs' shell blocks exists with the flags it shows, and
every ``OPSLAB_*`` variable they name is a setting (or one opslab sets for a harness, or a test's)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opslab.config import Settings
from opslab.docgen import variable_names

from .cli_commands import opslab_invocations, problems

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCE = re.compile(r"^```(?:bash|sh|shell|console)\s*$")
VARIABLE = re.compile(r"\bOPSLAB_[A-Z0-9_]*[A-Z0-9]\b")

# Variables opslab sets for the harness of a lab trial (not settings it reads); each must be in lab's source.
HARNESS_VARIABLES = {
    "OPSLAB_TRIAL_ID",
    "OPSLAB_RUN_ID",
    "OPSLAB_TRIAL_SEED",
    "OPSLAB_EVENTS_PATH",
    "OPSLAB_CONTROL_PATH",
}
EXEC_LINE = re.compile(r"^Exec(?:Start|StartPre|StartPost|Stop|Reload)=[-@:+!]*(.+)$")
INLINE_COMMAND = re.compile(r"`(opslab [^`]+)`")
TEST_VARIABLE = re.compile(r"^OPSLAB_TEST_[A-Z0-9_]+$")


def shell_lines(page: Path) -> list[tuple[int, str]]:
    """Each command line of the page's shell blocks (continuations joined, prompts stripped)."""
    lines: list[tuple[int, str]] = []
    in_block = False
    pending = ""
    start = 0
    for number, raw in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if not in_block:
            in_block = bool(SHELL_FENCE.match(stripped))
            continue
        if stripped.startswith("```"):
            in_block = False
            continue
        text = stripped.removeprefix("$ ")
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        lines.append((start, pending + text))
        pending = ""
    return lines


def inline_commands(page: Path) -> list[tuple[int, str]]:
    """``opslab …`` in inline code spans of the prose (outside fenced blocks)."""
    found: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            found += [(number, span) for span in INLINE_COMMAND.findall(line)]
    return found


def unit_commands(page: Path) -> list[tuple[int, str]]:
    """The commands of systemd units shown on the page (``ExecStart=…``, ``ExecStartPre=…``)."""
    return [
        (number, match.group(1))
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if (match := EXEC_LINE.match(line.strip()))
    ]


def documented_commands() -> list[tuple[str, list[str]]]:
    return [
        (f"{page.relative_to(ROOT)}:{number}", argv)
        for page in PAGES
        for number, line in [*shell_lines(page), *inline_commands(page), *unit_commands(page)]
        for argv in opslab_invocations(line)
    ]


def setting_names() -> set[str]:
    return {n for name, info in Settings.model_fields.items() for n in variable_names(name, info)}


def test_the_docs_show_opslab_commands() -> None:
    assert len(documented_commands()) > 100


@pytest.mark.parametrize(
    ("where", "argv"), documented_commands(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_a_documented_command_exists_with_its_flags(where: str, argv: list[str]) -> None:
    assert problems(argv) == [], f"{where}: opslab {' '.join(argv)}"


def test_every_documented_variable_is_a_setting_or_set_for_a_harness() -> None:
    known = setting_names() | HARNESS_VARIABLES
    unknown = sorted(
        f"{page.relative_to(ROOT)}: {name}"
        for page in PAGES
        for name in set(VARIABLE.findall(page.read_text(encoding="utf-8")))
        if name not in known and not TEST_VARIABLE.match(name)
    )
    assert unknown == []


def test_the_harness_variables_are_the_ones_the_lab_sets() -> None:
    lab_source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src/opslab/lab").rglob("*.py"))
    assert {name for name in HARNESS_VARIABLES if f'"{name}"' not in lab_source} == set()


def test_the_systemd_units_run_existing_commands() -> None:
    commands = [argv for where, argv in documented_commands() if where.startswith("docs/operations.md")]
    assert ["serve", "--host", "0.0.0.0", "--port", "8000"] in commands
    assert ["worker", "--name", "%H-%i"] in commands
    assert ["sandbox", "up", "--host", "127.0.0.1"] in commands


def test_the_checker_catches_a_missing_command_and_flag() -> None:
    assert problems(["db", "migrate"]) == ["`opslab db` has no command 'migrate'"]
    assert problems(["serve", "--bind", "x"]) == ["`opslab serve` has no option --bind"]
    assert problems(["worker", "--burst", "--name", "w1"]) == []
    assert list(opslab_invocations("OPSLAB_URL=http://x opslab runs list && opslab version")) == [
        ["runs", "list"],
        ["version"],
    ]


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_of_the_docs_reaches_a_file() -> None:
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in PAGES
        for target in LINK.findall(page.read_text(encoding="utf-8"))
        if "://" not in target and not target.startswith("mailto:") and not (page.parent / target).exists()
    ]
    assert broken == []


def test_the_readme_says_how_to_get_opslab_and_run_every_test() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in quick_start.splitlines()] == ["make demo", "make test"]
    for needed in ("source .venv/bin/activate", "uv tool install .", "pipx install .", "bash .ci/run"):
        assert needed in readme
    assert "OPSLAB_TEST_POSTGRES_URL" in readme and "OPSLAB_TEST_REDIS_URL" in readme
    assert "```mermaid" in readme
    for page in ("docs/operations.md", "docs/api.md", "docs/configuration.md", "docs/img/run-rca.png"):
        assert f"({page})" in readme
