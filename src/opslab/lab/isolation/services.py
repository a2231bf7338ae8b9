"""The egress proxy as a child of the runner: started before the first trial, stopped after the last."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from opslab import proc
from opslab.errors import Unavailable

START_TIMEOUT_S = 10.0


class EgressProxy:
    """``python -m opslab.lab.isolation.proxy`` on a Unix socket under a short temporary directory (the
    socket path must fit in 108 bytes; run directories can be deeper), its decisions logged to
    ``log_path`` as JSON lines."""

    def __init__(self, allowed_hosts: list[str], log_path: Path) -> None:
        self._dir = tempfile.mkdtemp(prefix="opslab-egress-")
        self.socket_path = f"{self._dir}/proxy.sock"
        argv = [sys.executable, "-m", "opslab.lab.isolation.proxy", "--socket", self.socket_path]
        argv += [a for host in allowed_hosts for a in ("--allow", host)]
        argv += ["--log", str(log_path)]
        self._child = proc.spawn(argv, stderr=str(log_path.with_suffix(".stderr")))
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
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EgressProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
