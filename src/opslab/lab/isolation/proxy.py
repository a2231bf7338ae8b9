"""The egress proxy of ``allowlist_enforced`` runs: HTTP CONNECT (and plain absolute-form HTTP) to the
allowed hosts only, served on a Unix socket that each trial's private network reaches through its bridge.

Each request is decided by ``opslab.egress.decide``: an entry must name the host, and the name must
resolve to a public address — a loopback, private, link-local, metadata… address only when an entry
names that address or its network. The proxy then connects to exactly the address it approved (a second
lookup could answer differently). Anything else gets ``403`` (a request that is not a proxy request
``400``), and every decision a line in the log: time, host (scrubbed of the run's secrets), port, the
address, its class, allowed or not, and why. Run as ``python -m opslab.lab.isolation.proxy --socket PATH
--allow HOST … --log FILE [--secrets-fd FD]`` (a child of the runner, dying with it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Protocol, TextIO
from urllib.parse import urlsplit

from opslab.egress import EgressDecision, HostRule, as_address, decide, name_allowed, parse_allowlist
from opslab.lab.secrets import Scrubber

MAX_HEAD = 64 * 1024
MAX_HOST = 253
CONNECT_TIMEOUT_S = 10.0
RESOLVE_TIMEOUT_S = 10.0


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses ``host`` resolves to, in the order to try them (empty: it does not)."""
        ...


class SystemResolver:
    """The machine's resolver (``getaddrinfo``)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        literal = as_address(host)
        if literal is not None:
            return [str(literal)]
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
            )
        except (OSError, UnicodeError, ValueError, TimeoutError):
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_target(method: str, target: str) -> tuple[str, int] | None:
    """The host and port a proxy request asks for, or None when it is not a proxy request."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            return None
        if host.startswith("[") != host.endswith("]"):
            return None
        return host.strip("[]"), int(port)
    try:
        parts = urlsplit(target)
        port_given = parts.port
    except ValueError:  # an invalid port, or a broken IPv6 literal
        return None
    if parts.scheme != "http" or not parts.hostname or port_given == 0:
        return None
    return parts.hostname, port_given or 80


def _plausible(host: str) -> bool:
    return 0 < len(host) <= MAX_HOST and host.isprintable() and not any(c.isspace() for c in host)


class Proxy:
    def __init__(
        self,
        rules: Sequence[HostRule],
        log: TextIO,
        *,
        resolver: Resolver | None = None,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.rules, self.log = tuple(rules), log
        self.resolver: Resolver = resolver or SystemResolver()
        self.scrubber = scrubber or Scrubber({})

    def _record(self, host: str | None, port: int | None, decision: EgressDecision) -> None:
        line = {
            "at": time.time(),
            "host": self.scrubber.host(host) if host is not None else None,
            "port": port,
            "address": decision.address,
            "address_class": decision.address_class,
            "allowed": decision.allowed,
            "why": self.scrubber.text(decision.why),
        }
        self.log.write(json.dumps(line) + "\n")
        self.log.flush()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.decode("latin-1").split(" ")
        target = parse_target(parts[0], parts[1]) if len(parts) == 3 else None
        if target is None or not _plausible(target[0]):
            self._record(None, None, EgressDecision(False, "not a proxy request"))
            await _reply(writer, b"400 Bad Request", b"opslab egress proxy: CONNECT host:port or GET http://")
            return
        host, port = target
        decision = await self.decide(host, port)
        if not decision.allowed or decision.address is None:
            self._record(host, port, decision)
            shown = self.scrubber.host(host)
            await _reply(writer, b"403 Forbidden", f"opslab: {shown}:{port}: {decision.why}".encode())
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(decision.address, port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            failed = EgressDecision(
                True, f"upstream unreachable: {exc}", decision.address, decision.address_class
            )
            self._record(host, port, failed)
            await _reply(
                writer, b"502 Bad Gateway", f"opslab: {self.scrubber.host(host)}:{port}: unreachable".encode()
            )
            return
        self._record(host, port, decision)
        if parts[0] == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:
            origin = urlsplit(parts[1])
            path = (origin.path or "/") + (f"?{origin.query}" if origin.query else "")
            up_writer.write(f"{parts[0]} {path} {parts[2]}\r\n".encode("latin-1") + rest)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def decide(self, host: str, port: int) -> EgressDecision:
        """Names first (nothing is resolved for a host no entry names), then addresses."""
        if not name_allowed(self.rules, host, port):
            return decide(self.rules, host, port, [])
        return decide(self.rules, host, port, await self.resolver.resolve(host, port))


async def _reply(writer: asyncio.StreamWriter, status: bytes, body: bytes) -> None:
    writer.write(
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(1 << 16):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            dst.close()


async def serve(socket_path: str, proxy: Proxy) -> None:
    server = await asyncio.start_unix_server(proxy.handle, path=socket_path, limit=MAX_HEAD)
    async with server:
        await server.serve_forever()


def _read_secrets(fd: int | None) -> Scrubber:
    if fd is None:
        return Scrubber({})
    with os.fdopen(fd, "rb") as f:
        data = json.loads(f.read() or b"{}")
    return Scrubber({str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="opslab-egress-proxy")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--log", required=True)
    parser.add_argument("--secrets-fd", type=int, default=None)
    args = parser.parse_args(argv)
    scrubber = _read_secrets(args.secrets_fd)
    rules = parse_allowlist(args.allow)
    with open(args.log, "a", encoding="utf-8") as log, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.socket, Proxy(rules, log, scrubber=scrubber)))


if __name__ == "__main__":
    main(sys.argv[1:])
