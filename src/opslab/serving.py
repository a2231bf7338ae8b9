"""An ASGI app served by uvicorn on a thread of this process: the service for ``opslab demo`` and the
tests, the sandbox's chaos and action servers; and the free-port pick that lets a whole world start on
free ports."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from opslab.errors import Unavailable


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS's pick), for a service about to bind it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    """``with ServerThread(app) as server: httpx.get(server.url)`` — starts, waits until ready, stops.
    ``name``: what the server is, for the error when it cannot start."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        name: str | None = None,
        log_level: str = "warning",
    ) -> None:
        # With no port given, the socket is bound here, on a port the kernel picks, and handed to uvicorn
        # open: a port picked, closed and bound again later could be taken in between by another
        # process doing the same (parallel tests did: "address already in use").
        self._socket: socket.socket | None = None
        if port is None:
            self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            self._socket.bind((host, 0))
            port = int(self._socket.getsockname()[1])
        self.host, self.port, self.name = host, port, name
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level=log_level, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        sockets = [self._socket] if self._socket is not None else None
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": sockets},
            name=f"uvicorn:{name or self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop(timeout=1.0)  # its socket with it, once the thread has ended
                what = f"the {self.name} server" if self.name else "server"
                raise Unavailable(
                    f"{what} on {self.url} did not start (is the port taken?)",
                    details={"url": self.url, **({"part": self.name} if self.name else {})},
                )
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._socket is not None and not self._thread.is_alive():
            self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()
