"""Reading run files for ``opslab runs ingest``: one JSON object, a JSON array or JSON Lines, or stdin,
with a bad line reported (and skipped) rather than failing the whole file."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opslab.errors import InvalidInput


def read_items(source: str) -> Iterator[tuple[int, Any]]:
    """Yield (bytes read so far, item) from a JSON object, a JSON array or JSON Lines; '-' is stdin."""
    if source == "-":
        text = sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidInput.for_field("FILE", f"{source}: no such file")
        text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if not stripped:
        raise InvalidInput.for_field("FILE", "empty input; expected JSON or JSON Lines")
    if stripped[0] in "[{":
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as exc:
            if stripped[0] == "[" or "Extra data" not in str(exc):
                raise InvalidInput.for_field("FILE", f"malformed JSON: {exc}") from None
        else:
            items = whole if isinstance(whole, list) else [whole]
            for item in items:
                yield len(text), item
            return
    done = 0
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        done += len(line)
        if not line.strip():
            continue
        try:
            yield done, json.loads(line)
        except json.JSONDecodeError as exc:
            yield done, BadLine(lineno, str(exc))


class BadLine:
    def __init__(self, lineno: int, message: str) -> None:
        self.lineno, self.message = lineno, message
