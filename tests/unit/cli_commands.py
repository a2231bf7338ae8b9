"""Checks an ``opslab …`` command line against the real CLI (the Typer app as a Click tree): every
subcommand and every flag it names must exist. Shared by the docs and the deployment files' tests.

Typer vendors its own Click, so the tree is walked by shape (``commands``, ``params``), not by class."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterator
from typing import Any

import typer

from opslab.cli.app import build_app

SHELL_SEPARATORS = re.compile(r"\s*(?:&&|\|\||;|\||&|\$\(|`)\s*")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")
PLACEHOLDER = re.compile(r"^(?:…|\.\.\.|<.*>|\[.*\]|[A-Z][A-Z_]*)$")


@functools.cache
def cli_root() -> Any:
    return typer.main.get_command(build_app())


def opslab_invocations(shell_line: str) -> Iterator[list[str]]:
    """The argv (after ``opslab``) of each ``opslab`` call in one shell line, env assignments skipped."""
    for segment in SHELL_SEPARATORS.split(shell_line):
        try:
            words = shlex.split(segment, comments=True)
        except ValueError:
            words = segment.split()
        while words and ENV_ASSIGNMENT.match(words[0]):
            words = words[1:]
        if words and (words[0] == "opslab" or words[0].endswith("/opslab")):
            yield words[1:]


def problems(argv: list[str], root: Any = None) -> list[str]:
    """What in ``opslab ARGV`` the CLI does not have; empty when every command and flag exists."""
    command = root or cli_root()
    path = ["opslab"]
    found: list[str] = []
    for shown in argv:
        # `[--wait]`, `[--overrides FILE]`: an optional part of a usage line is checked like the rest.
        word = shown.lstrip("[").rstrip("]") if shown.startswith("[") or shown.endswith("]") else shown
        if word == "--":
            break
        if word.startswith("-") and word != "-":
            flag = word.split("=", 1)[0]
            if flag not in _flags(command):
                found.append(f"`{' '.join(path)}` has no option {flag}")
            continue
        if hasattr(command, "commands"):
            sub = command.commands.get(word)
            if sub is None:
                if PLACEHOLDER.match(word):
                    break  # `opslab lab <command> …`: nothing more to check
                if not _takes_arguments(command):
                    found.append(f"`{' '.join(path)}` has no command {word!r}")
                continue
            command = sub
            path.append(word)
    return found


def _flags(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def _takes_arguments(command: Any) -> bool:
    return any(p.param_type_name == "argument" for p in command.params)
