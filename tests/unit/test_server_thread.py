"""``ServerThread`` with no port holds the one it picked from the start: a port picked, closed and bound
again later could be taken in between by another process picking ports the same way."""

from __future__ import annotations

import errno
import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from opslab.errors import Unavailable
from opslab.serving import ServerThread


def _app() -> Starlette:
    return Starlette(routes=[Route("/", lambda _request: PlainTextResponse("ok"))])


def test_the_picked_port_is_held_before_the_server_starts_and_freed_after_it_stops() -> None:
    server = ServerThread(_app())
    with socket.socket() as other, pytest.raises(OSError) as taken:
        other.bind(("127.0.0.1", server.port))
    assert taken.value.errno == errno.EADDRINUSE
    with server:
        assert httpx.get(server.url + "/", timeout=10).text == "ok"
    with socket.socket() as again:
        again.bind(("127.0.0.1", server.port))  # released with the server


def test_a_given_port_is_bound_by_the_server_itself() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ServerThread(_app(), port=port) as server:
        assert server.port == port and httpx.get(server.url + "/", timeout=10).text == "ok"


# uvicorn ends its thread with SystemExit when its startup fails: that is the failure this test makes.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_server_that_cannot_start_releases_the_port_it_held() -> None:
    async def refuse(scope: object, receive: object, send: object) -> None:  # a lifespan that fails
        raise RuntimeError("no")

    server = ServerThread(refuse, name="chaos")  # type: ignore[arg-type]
    with pytest.raises(Unavailable, match="the chaos server on .* did not start") as refused:
        server.start(timeout=10)
    assert refused.value.details == {"url": server.url, "part": "chaos"}
    with socket.socket() as again:
        again.bind(("127.0.0.1", server.port))
