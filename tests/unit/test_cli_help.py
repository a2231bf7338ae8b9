"""The CLI's help says what a command does: a command that needs a running service says so, and only a
command that works on the local database says it falls back to it."""

from __future__ import annotations

from typing import Any

import pytest

from .cli_commands import cli_root

SERVICE_ONLY = [("rca", "run"), ("rca", "show"), ("rca", "cancel"), ("responder", "halt")]
LOCAL_TOO = [("runs", "list"), ("runs", "show"), ("runs", "ingest"), ("responder", "incidents")]


def url_help(path: tuple[str, ...]) -> str:
    command: Any = cli_root()
    for name in path:
        command = command.commands[name]
    (option,) = [p for p in command.params if "--url" in getattr(p, "opts", [])]
    return str(option.help)


@pytest.mark.parametrize("path", SERVICE_ONLY)
def test_a_service_only_command_says_it_needs_the_service(path: tuple[str, ...]) -> None:
    text = url_help(path)
    assert "Required" in text and "local database" not in text


@pytest.mark.parametrize("path", LOCAL_TOO)
def test_a_command_with_a_local_fallback_says_so(path: tuple[str, ...]) -> None:
    assert "local database" in url_help(path)
