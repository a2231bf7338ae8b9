"""``LabRunnerError``: an ``opslab lab …`` command the SDK ran did not succeed.

It is the seed's SDK error (``code, message, details, exitCode, stderr, command``) and reports a
*process*: the argv that ran, its exit code and its stderr, beside the error the CLI's ``--json``
envelope named. ``code`` is then the product's own (``invalid_input``, ``not_found``,
``policy_violation`` …; see ``opslab.errors``), and ``to_opslab_error()`` rebuilds that exception.
When the runner gave no envelope the SDK names what happened itself:

    runner_not_found    the executable could not be started (exit_code None)
    runner_timeout      the command outlived the client's timeout and was killed (exit_code None)
    invalid_output      stdout was not one JSON object (a crash, a runner that is not opslab)

It is not a subclass of ``OpslabError``: that tree's code and exit code are fixed per class, while
this error carries whatever the process reported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opslab.errors import OpslabError, from_wire

STDERR_TAIL = 4000


class LabRunnerError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        exit_code: int | None = None,
        stderr: str = "",
        command: Sequence[str] = (),
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.exit_code = exit_code
        self.stderr = stderr
        self.command: list[str] = list(command)

    def to_opslab_error(self) -> OpslabError:
        """The product's exception for ``code`` (``InvalidInput`` for ``invalid_input`` …)."""
        return from_wire(0, {"error": {"code": self.code, "message": self.message, "details": self.details}})

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "exit_code": self.exit_code,
            "stderr": self.stderr,
            "command": self.command,
        }


def error_of(command: Sequence[str], exit_code: int | None, stdout: str, stderr: str) -> LabRunnerError:
    """The error of a failed command: from its ``--json`` envelope when stdout holds one, else from
    the exit code and the tail of stderr."""
    tail = stderr[-STDERR_TAIL:]
    envelope = parse_object(stdout)
    error = envelope.get("error") if envelope else None
    if isinstance(error, dict):
        details = error.get("details")
        return LabRunnerError(
            str(error.get("code") or "command_failed"),
            str(error.get("message") or f"exit code {exit_code}"),
            details if isinstance(details, dict) else {},
            exit_code,
            tail,
            command,
        )
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    return LabRunnerError(
        "invalid_output" if exit_code == 0 else "command_failed",
        f"{' '.join(command[:3])} exited {exit_code} without a JSON envelope" + (f": {last}" if last else ""),
        {"stdout": stdout[-STDERR_TAIL:]},
        exit_code,
        tail,
        command,
    )


def parse_object(stdout: str) -> dict[str, Any] | None:
    """The one JSON object ``--json`` prints (the last non-empty line, should anything precede it)."""
    for text in (stdout, *reversed(stdout.strip().splitlines()[-1:])):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
