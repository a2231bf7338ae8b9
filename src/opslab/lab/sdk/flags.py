"""Options to command-line flags, as ``opslab lab`` parses them: an option left at None is no flag."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from pydantic import JsonValue

StrPath = str | os.PathLike[str]


def opt(flag: str, value: StrPath | int | None) -> list[str]:
    """``--flag VALUE``, or nothing for None."""
    return [] if value is None else [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]


def bool_flag(flag: str, on: bool) -> list[str]:
    return [flag] if on else []


def repeated(flag: str, values: Sequence[str]) -> list[str]:
    """``--flag A --flag B`` (Typer's list options)."""
    return [part for value in values for part in (flag, value)]


def fork_sets(bindings: Mapping[str, JsonValue] | None) -> list[str]:
    """``--set key=<JSON>`` per binding: the CLI parses the value as JSON, so a string that looks like a
    number stays a string."""
    return repeated("--set", [f"{key}={json.dumps(value)}" for key, value in (bindings or {}).items()])
