"""The egress proxy as a child of the runner: started before the first trial, stopped after the last."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from opslab import proc
from opslab.errors import Unavailable

START_TIMEOUT_S = 10.0


class EgressProxy:
    """``python -m opslab.lab.isolation.proxy`` on a Unix socket at ``socket_path`` (in the run's private
    folder), its decisions logged to ``log_path`` as JSON lines. The run's secrets reach it through a
    pipe, never its command line or environment, so the host names it logs are scrubbed of them."""

    def __init__(
        self, allowed_hosts: list[str], log_path: Path, socket_path: str, secrets: Mapping[str, str]
    ) -> None:
        self.socket_path = socket_path
        argv = [sys.executable, "-m", "opslab.lab.isolation.proxy", "--socket", socket_path]
        argv += [a for host in allowed_hosts for a in ("--allow", host)]
        argv += ["--log", str(log_path)]
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, json.dumps(dict(secrets)).encode())  # small: fits the pipe's buffer
            os.close(write_fd)
            write_fd = -1
            argv += ["--secrets-fd", str(read_fd)]
            self._child = proc.spawn(argv, stderr=str(log_path.with_suffix(".stderr")), pass_fds=(read_fd,))
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not Path(self.socket_path).exists():
            if not self._child.alive or time.monotonic() > deadline:
                self.close()
                raise Unavailable(
                    "the egress proxy for allowlist_enforced did not start",
                    details={"log": str(log_path.with_suffix(".stderr"))},
                )
            time.sleep(0.02)

    def close(self) -> None:
        self._child.stop(grace_s=1.0)

    def __enter__(self) -> EgressProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
