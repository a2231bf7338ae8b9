"""docs/from-the-seeds.md: each seed has its table, and everything named in the *opslab* column exists — a
command with its options, a setting, a route of the service or the sandbox, a file of the repository or
one opslab writes, a make target."""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import pytest

from opslab.config import seed_aliases

from .cli_commands import opslab_invocations, problems
from .test_docs_commands import setting_names

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "from-the-seeds.md"
SEEDS = ("AgentOps Smart SRE", "LabOps agent", "Agent Control Plane", "AutoOps", "AgentLab")
CODE = re.compile(r"`([^`]+)`")
ROUTE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*)$")
SETTING = re.compile(r"^[A-Z][A-Z0-9_]*$")


def rows() -> list[tuple[str, str, str]]:
    """(section, seed cell, opslab cell) of every table row."""
    found: list[tuple[str, str, str]] = []
    section = ""
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:]
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| ") else []
        if len(cells) == 3 and cells[0] not in ("the seed", "---") and not set(cells[0]) <= {"-"}:
            found.append((section, cells[0], cells[1]))
    return found


@functools.cache
def routes() -> set[tuple[str, str]]:
    """Every route of the service (docs/api.md, generated from its OpenAPI document and tested) and of the
    sandbox's servers and the service's unlisted ones (their decorators in the source)."""
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    found = {(m, p) for m, p in re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|", api, re.M)}
    for path in (ROOT / "src" / "opslab").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= {
            (m.upper(), p) for m, p in re.findall(r"@\w+\.(get|post|put|patch|delete)\(\s*\"([^\"]+)\"", text)
        }
        found |= {("GET", p) for p in re.findall(r"\"(/metrics)\",", text)}
    return found


@functools.cache
def source() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src" / "opslab").rglob("*.py"))


def written_by_opslab(name: str) -> bool:
    return name in source()


def problem(span: str) -> str | None:
    """Why ``span`` names nothing that exists; None when it does."""
    if span.startswith(("opslab ", "OPSLAB_")) and " " in span:
        argvs = list(opslab_invocations(span))
        return (
            None
            if argvs and all(problems(a) == [] for a in argvs)
            else f"{problems(argvs[0]) if argvs else 'no command'}"
        )
    if span.startswith("./lab "):
        return None if not (found := problems(["lab", *shlex.split(span)[1:]])) else str(found)
    if span.startswith("make "):
        target = span.split()[1]
        makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
        return None if re.search(rf"^{re.escape(target)}:", makefile, re.M) else f"no make target {target}"
    if span.startswith("docker compose -f "):
        return None if (ROOT / span.split()[3]).is_file() else "no compose file"
    if span.startswith("cp "):
        return None if (ROOT / span.split()[1]).is_file() else f"no file {span.split()[1]}"
    if match := ROUTE.match(span):
        return None if (match.group(1), match.group(2)) in routes() else "no such route"
    if SETTING.match(span):
        return None if span in setting_names() | set(seed_aliases()) else "no such setting"
    if span == "X-Ingest-Secret":
        return None if written_by_opslab(span) else "the service reads no such header"
    if "/" in span or "." in span:
        if (ROOT / span).exists():
            return None
        return None if written_by_opslab(Path(span).name) else f"no file {span}, and opslab writes none"
    return "not a command, setting, route or file this test knows"


def test_every_seed_has_its_table() -> None:
    sections = {section for section, _, _ in rows()}
    for seed in SEEDS:
        assert any(section.startswith(seed) for section in sections), seed
    assert len(rows()) > 80


@pytest.mark.parametrize(("section", "seed", "ours"), rows(), ids=lambda v: v[:60])
def test_what_a_row_names_in_opslab_exists(section: str, seed: str, ours: str) -> None:
    spans = CODE.findall(ours)
    assert spans, f"{section}: {seed}: the opslab column names nothing checkable"
    assert {span: problem(span) for span in spans} == dict.fromkeys(spans), f"{section}: {seed}"


def test_the_checker_catches_what_does_not_exist() -> None:
    assert problem("opslab serve --bind 0.0.0.0") is not None
    assert problem("GET /agent/nowhere") is not None
    assert problem("OPSLAB_NO_SUCH_SETTING") is not None
    assert problem("examples/missing.yaml") is not None
    assert problem("make deploy-to-mars") is not None
