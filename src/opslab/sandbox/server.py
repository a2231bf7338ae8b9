"""Serving sandbox apps inside this process: a uvicorn server on a thread of its own (the supervisor runs
the chaos and action servers so), and the free-port pick that lets a whole world start on free ports."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from opslab.errors import Unavailable


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS's pick), for a service about to bind it."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ServiceThread:
    """One app served by uvicorn on a daemon thread; ``start`` returns once it accepts connections."""

    def __init__(self, app: FastAPI, *, name: str, host: str, port: int) -> None:
        self.name, self.host, self.port = name, host, port
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name=f"sandbox-{name}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> ServiceThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise Unavailable(
                    f"the sandbox {self.name} server did not start on {self.url} (is the port taken?)",
                    details={"part": self.name, "url": self.url},
                )
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
