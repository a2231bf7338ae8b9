"""Every YAML and JSON block of the README and docs/ parses (a reader copies them), and a canary plan shown
in the docs is a plan `opslab canary run --config` accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from opslab.canary import parse_plan

from .test_docs_commands import PAGES, ROOT

FENCE = re.compile(r"^\s*```(\w*)\s*$")
DATA_LANGUAGES = ("yaml", "yml", "json", "jsonl")


def blocks(page: Path) -> list[tuple[int, str, str]]:
    """(first line, language, text) of each fenced block of ``page``."""
    found: list[tuple[int, str, str]] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    start, language = -1, ""
    for number, line in enumerate(lines, 1):
        if start < 0 and (match := FENCE.match(line)):
            start, language = number, match.group(1)
        elif start >= 0 and line.strip().startswith("```"):
            found.append((start + 1, language, "\n".join(lines[start : number - 1])))
            start = -1
    return found


DATA_BLOCKS = [
    (f"{page.relative_to(ROOT)}:{line}", language, text)
    for page in PAGES
    for line, language, text in blocks(page)
    if language in DATA_LANGUAGES
]


def test_the_docs_show_data_blocks() -> None:
    assert len(DATA_BLOCKS) >= 10


@pytest.mark.parametrize(("where", "language", "text"), DATA_BLOCKS, ids=lambda v: v if ":" in v else "")
def test_a_data_block_parses(where: str, language: str, text: str) -> None:
    if language in ("yaml", "yml"):
        documents = list(yaml.safe_load_all(text))
        assert documents, where
        plan = documents[0]
        if isinstance(plan, dict) and "experiment" in plan and "canary" in where:
            parse_plan(plan)  # a canary plan is one the canary accepts
    elif language == "json":
        json.loads(text)
    else:
        for line in text.splitlines():
            if line.strip():
                json.loads(line)


def test_the_checker_sees_a_broken_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    # The sandbox plan once shown in docs/canary.md: a `?` inside a flow mapping.
    page.write_text("intro\n\n```yaml\ntarget: {base_url: http://h:1, request_path: /api/search?q=x}\n```\n")
    ((_, language, text),) = blocks(page)
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)
