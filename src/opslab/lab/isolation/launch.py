"""One trial's harness as the isolation plan launches it (``IsolationPlan.launch``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from opslab.lab.isolation.sandbox import Admission
from opslab.proc import Remote


@dataclass(frozen=True)
class Launch:
    """One trial's harness as launched, for ``proc.run``: ``pre_exec`` runs in the child before it
    executes, ``started`` in the runner once it runs, and the child inherits ``pass_fds`` (the seccomp
    filter, the sandbox's admission pipes); pass all three on. ``close``, once the trial ended, closes
    the descriptors and ends what is left of it."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    pre_exec: Callable[[], None] | None
    input_path: str  # as the harness sees them
    output_path: str
    fds: tuple[int, ...] = ()  # the seccomp filter's
    release: Callable[[], None] | None = None  # ends what is left of the trial (its pids group)
    admission: Admission | None = None
    on_start: Callable[[int], None] | None = None  # a host process's admission: its group, its limits
    remote: Callable[[int, int], Remote] | None = None  # started by the worker's zygote, not executed here

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return self.fds + (self.admission.fds if self.admission is not None else ())

    @property
    def started(self) -> Callable[[int], None] | None:
        return self.admission.started if self.admission is not None else self.on_start

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        if self.admission is not None:
            self.admission.close()
        if self.release is not None:
            self.release()
