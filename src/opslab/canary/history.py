"""Append-only run history: one schema-versioned JSON object a line, O_APPEND + fsync, never rewritten."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (
        json.dumps({"schema_version": SCHEMA_VERSION, **record}, default=str, ensure_ascii=False) + "\n"
    ).encode()
    # One write() of the whole line on an O_APPEND descriptor: concurrent runs never interleave a line.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn last line from a crash is skipped, never rewritten
    return out
