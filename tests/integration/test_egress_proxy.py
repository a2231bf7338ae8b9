"""The egress proxy of allowlist_enforced runs, for real: its Unix socket, real upstream servers on this
machine, and the request-smuggling tricks a hostile harness would try. A server on a port the
allowlist does not open stands for everything else: no trick may reach it.

Names resolve through a fixed table (``StaticResolver``): ``allowed.test`` to the loopback address the
allowlist names explicitly (with the allowed port only), and other names of the allowed domain to
loopback, metadata, private and unspecified addresses, which the allowlist must refuse."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opslab.egress import parse_allowlist
from opslab.lab.isolation import RunScratch
from opslab.lab.isolation.proxy import MAX_HEAD, Proxy
from opslab.lab.secrets import Scrubber

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class StaticResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int) -> list[str]:
        literal = host.strip("[]")
        if literal.replace(".", "").isdigit() or ":" in literal:
            return [literal]
        return self.table.get(host.lower().rstrip("."), [])


class Upstream:
    """A server that answers every request head it reads with 200 and records what it got."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        data, answered = b"", 0
        self.received.append(b"")
        index = len(self.received) - 1
        with conn:
            conn.settimeout(30)
            try:
                while chunk := conn.recv(65536):
                    data += chunk
                    self.received[index] = data
                    while data.count(b"\r\n\r\n") > answered:
                        conn.sendall(OK)
                        answered += 1
            except OSError:
                return


class Forbidden:
    """A listening port nobody may reach: a connection to it waits in the backlog, never accepted, so
    ``reached`` is exact at any moment after the proxy answered."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]
        self.listener.setblocking(False)

    def reached(self) -> bool:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True


class RunningProxy:
    def __init__(self, proxy: Proxy, path: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = asyncio.start_unix_server(proxy.handle, path=path, limit=MAX_HEAD)
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(10)
        self.path = path

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[str, Upstream, Forbidden, Path]]:
    allowed, forbidden = Upstream(), Forbidden()
    table = {
        "allowed.test": ["127.0.0.1"],
        "rebind.allowed.test": ["127.0.0.1"],
        "meta.allowed.test": ["169.254.169.254"],
        "private.allowed.test": ["10.0.0.5"],
        "zero.allowed.test": ["0.0.0.0"],
        "mapped.allowed.test": ["::ffff:127.0.0.1"],
    }
    rules = parse_allowlist(["allowed.test", "*.allowed.test", f"127.0.0.1:{allowed.port}"])
    log_path = tmp_path / "egress.jsonl"
    with RunScratch() as private, log_path.open("a") as log:
        proxy = Proxy(rules, log, resolver=StaticResolver(table), scrubber=Scrubber({"TOKEN": "Abcd€efgh12"}))
        running = RunningProxy(proxy, private.file("proxy.sock"))
        try:
            yield running.path, allowed, forbidden, log_path
        finally:
            running.close()
            forbidden.listener.close()
            allowed.listener.close()


def ask(path: str, raw: bytes, *, half_close: bool = False) -> bytes:
    """Send ``raw`` to the proxy and read its answer until it closes the connection."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(raw)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def status(answer: bytes) -> int | None:
    first = answer.split(b"\r\n", 1)[0].split(b" ")
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else None


# (request line with {A} the allowed port and {F} the forbidden one, the status the proxy must answer)
REFUSED = [
    ("CONNECT forbidden.test:443 HTTP/1.1", 403),
    ("CONNECT 127.0.0.1:{F} HTTP/1.1", 403),
    ("GET http://127.0.0.1:{F}/ HTTP/1.1", 403),
    ("CONNECT allowed.test:{F} HTTP/1.1", 403),
    ("GET http://allowed.test:{F}/ HTTP/1.1", 403),
    ("GET http://allowed.test@127.0.0.1:{F}/ HTTP/1.1", 403),
    ("GET http://allowed.test:{A}@127.0.0.1:{F}/ HTTP/1.1", 403),
    ("GET http://127.0.0.1:{F}#@allowed.test:{A}/ HTTP/1.1", 403),
    ("GET http://127.0.0.1:{F}?@allowed.test:{A}/ HTTP/1.1", 403),
    ("CONNECT allowed.test.evil.test:443 HTTP/1.1", 403),
    ("CONNECT evilallowed.test:443 HTTP/1.1", 403),
    ("CONNECT rebind.allowed.test:{F} HTTP/1.1", 403),
    ("CONNECT rebind.allowed.test:{A} HTTP/1.1", 200),  # the address is named for that port
    ("CONNECT meta.allowed.test:80 HTTP/1.1", 403),
    ("GET http://meta.allowed.test/latest/meta-data/ HTTP/1.1", 403),
    ("CONNECT private.allowed.test:80 HTTP/1.1", 403),
    ("CONNECT zero.allowed.test:{F} HTTP/1.1", 403),
    ("CONNECT mapped.allowed.test:{F} HTTP/1.1", 403),
    ("CONNECT [::1]:{F} HTTP/1.1", 403),
    ("CONNECT [::ffff:127.0.0.1]:{F} HTTP/1.1", 403),
    ("CONNECT 2130706433:{F} HTTP/1.1", 403),
    ("CONNECT 0x7f000001:{F} HTTP/1.1", 403),
    ("CONNECT 0177.0.0.1:{F} HTTP/1.1", 403),
    ("CONNECT 127.1:{F} HTTP/1.1", 403),
    ("CONNECT localhost:{F} HTTP/1.1", 403),
    ("CONNECT ALLOWED.TEST:{F} HTTP/1.1", 403),
    ("CONNECT allowed.test.:{F} HTTP/1.1", 403),
    ("GET http://ALLOWED.test:{F}/ HTTP/1.1", 403),
    ("CONNECT \uff41llowed.test:{A} HTTP/1.1", 400),  # UTF-8 on the wire (a full-width a) is no host
    ("GET http://allowed.test%2e:{F}/ HTTP/1.1", 403),
    ("CONNECT allowed.test:{A}:{F} HTTP/1.1", 403),
    ("CONNECT allowed.test\x00.evil.test:443 HTTP/1.1", 400),
    ("GET / HTTP/1.1", 400),
    ("GET https://allowed.test:{A}/ HTTP/1.1", 400),
    ("CONNECT allowed.test HTTP/1.1", 400),
    ("CONNECT allowed.test:0 HTTP/1.1", 400),
    ("CONNECT allowed.test:65536 HTTP/1.1", 400),
    ("CONNECT allowed.test:\u0664\u0664\u0663 HTTP/1.1", 400),
    ("CONNECT allowed.test:-1 HTTP/1.1", 400),
    ("CONNECT  allowed.test:{A} HTTP/1.1", 400),
    ("connect allowed.test:{A} HTTP/1.1", 400),
    ("CONNECT allowed.test:{A}", 400),
    ("CONNECT\tallowed.test:{A} HTTP/1.1", 400),
    ("GET http:///x HTTP/1.1", 400),
    ("GET http://[::1/ HTTP/1.1", 400),
    ("GET http://allowed.test:abc/ HTTP/1.1", 400),
    ("CONNECT [::1:{F} HTTP/1.1", 400),
    ("CONNECT " + "a" * 300 + ".allowed.test:443 HTTP/1.1", 400),
]


@pytest.mark.parametrize(("line", "want"), REFUSED)
def test_a_smuggling_trick_never_reaches_a_port_the_allowlist_does_not_open(
    world: tuple[str, Upstream, Forbidden, Path], line: str, want: int
) -> None:
    path, allowed, forbidden, log = world
    request = line.format(A=allowed.port, F=forbidden.port).encode("utf-8") + b"\r\nHost: x\r\n\r\n"
    answer = ask(path, request, half_close=True)
    assert status(answer) == want, answer[:200]
    assert not forbidden.reached()
    decision = json.loads(log.read_text().splitlines()[-1])
    assert decision["allowed"] is (want == 200)


def test_connect_to_the_allowed_host_tunnels_to_it_and_nowhere_else(
    world: tuple[str, Upstream, Forbidden, Path],
) -> None:
    path, allowed, forbidden, log = world
    inside = f"CONNECT 127.0.0.1:{forbidden.port} HTTP/1.1\r\n\r\n".encode()  # a proxy request in the tunnel
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(f"CONNECT allowed.test:{allowed.port} HTTP/1.1\r\n\r\n".encode())
        assert s.recv(1024).startswith(b"HTTP/1.1 200")
        s.sendall(inside)
        assert s.recv(1024) == OK
    assert allowed.received[-1] == inside and not forbidden.reached()
    line = json.loads(log.read_text().splitlines()[-1])
    assert line["allowed"] is True and line["address"] == "127.0.0.1" and line["address_class"] == "loopback"


def test_absolute_form_requests_go_to_the_url_host_whatever_the_host_header_or_what_follows(
    world: tuple[str, Upstream, Forbidden, Path],
) -> None:
    path, allowed, forbidden, _ = world
    first = f"GET http://allowed.test:{allowed.port}/a HTTP/1.1\r\nHost: 127.0.0.1:{forbidden.port}\r\n\r\n"
    second = f"GET http://127.0.0.1:{forbidden.port}/b HTTP/1.1\r\nHost: x\r\n\r\n"  # pipelined behind it
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall((first + second).encode())
        got = b""
        while got.count(b"200 OK") < 2:
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
    received = allowed.received[-1]
    assert received.startswith(b"GET /a HTTP/1.1\r\n") and second.encode() in received
    assert not forbidden.reached()


@pytest.mark.parametrize(
    "raw",
    [
        b"CONNECT 127.0.0.1:{F} HTTP/1.1\n\n",  # bare line feeds: never a complete head
        b"GET http://127.0.0.1:{F}/ HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n",  # over the limit
        b"",  # nothing at all
    ],
)
def test_a_request_the_proxy_cannot_read_is_dropped_without_a_connection(
    world: tuple[str, Upstream, Forbidden, Path], raw: bytes
) -> None:
    path, _, forbidden, _ = world
    answer = ask(path, raw.replace(b"{F}", str(forbidden.port).encode()), half_close=True)
    assert status(answer) is None and not forbidden.reached()


def test_each_decision_is_logged_with_the_address_and_why(
    world: tuple[str, Upstream, Forbidden, Path],
) -> None:
    path, allowed, forbidden, log = world
    for host in ("rebind.allowed.test", "meta.allowed.test", "nowhere.test"):
        ask(path, f"CONNECT {host}:{forbidden.port} HTTP/1.1\r\n\r\n".encode(), half_close=True)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    rebind, meta, nowhere = lines[-3:]
    assert (rebind["address"], rebind["address_class"], rebind["allowed"]) == ("127.0.0.1", "loopback", False)
    assert "loopback" in rebind["why"] and rebind["port"] == forbidden.port
    assert (meta["address"], meta["address_class"]) == ("169.254.169.254", "metadata")
    assert nowhere["address"] is None and nowhere["why"] == "not in allowed_hosts"
    assert not forbidden.reached()


def test_a_host_name_built_from_a_secret_is_logged_redacted(
    world: tuple[str, Upstream, Forbidden, Path],
) -> None:
    path, _, _, log = world
    label = "Abcd€efgh12".encode("idna").decode()  # as a client sends a non-ASCII name: xn--…
    for host in (f"{label}.leak.test", f"{label.upper()}.LEAK.test", f"x-{label}.leak.test"):
        ask(path, f"CONNECT {host}:443 HTTP/1.1\r\n\r\n".encode(), half_close=True)
    text = log.read_text(encoding="utf-8")
    for form in ("abcd€efgh12", label, "ABCD€EFGH12"):
        assert form.lower() not in text.lower(), text
    assert text.lower().count("leak.test") == 3
