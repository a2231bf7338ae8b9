"""What a capability plugs into the job machinery: a ``JobKind`` built by its ``job.py`` from ``JobDeps``.

Each capability has a ``job.py`` exporting ``KIND`` and ``job_kind(deps) -> JobKind``; the runtime
collects the factories in one list and passes itself as the deps. A handler gets the job's payload
and a ``JobProgress`` to report to, and returns the job's result as JSON-able data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opslab.config import Settings
    from opslab.llm import ChatClient
    from opslab.telemetry import RunRepository


class JobProgress(Protocol):
    """Handed to a job's handler: ``progress.report("Collecting evidence", 30)``. ``stopping`` is set when
    the process is shutting down: a handler that leaves something half-changed (a canary's flags) stops
    and puts it back."""

    def report(self, step: str, pct: float, message: str | None = None) -> None: ...

    @property
    def stopping(self) -> threading.Event: ...


Handler = Callable[[dict[str, Any], JobProgress], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    done_step: str = "Complete"
    failed_step: str = "Failed"


class JobDeps(Protocol):
    """What a job kind may ask of the runtime that builds it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def runs(self) -> RunRepository: ...

    def chat_model(self) -> ChatClient | None:
        """The configured OpenAI-compatible model, or None when no LLM is configured."""
        ...


KindFactory = Callable[[JobDeps], JobKind]
