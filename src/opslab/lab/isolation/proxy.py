"""The egress proxy of ``allowlist_enforced`` runs: HTTP CONNECT (and plain absolute-form HTTP) to the
listed hosts only, served on a Unix socket that each trial's private network reaches through its bridge.

An allowed host is ``name`` (any port), ``name:port``, or ``*.example.com`` (that domain's subdomains);
names compare case-insensitively. Anything else gets ``403`` and a line in the decision log, as does a
request that is not a proxy request. Run as ``python -m opslab.lab.isolation.proxy --socket PATH
--allow HOST … --log FILE`` (a child of the runner, dying with it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Allowlist:
    entries: tuple[str, ...]

    def allows(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]")
        for raw in self.entries:
            entry = raw.lower()
            name, _, want_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            if want_port and want_port != str(port):
                continue
            if name.startswith("*."):
                if host.endswith(name[1:]) and host != name[2:]:
                    return True
            elif host == name.strip("[]"):
                return True
        return False


def parse_target(method: str, target: str) -> tuple[str, int] | None:
    """The host and port a proxy request asks for, or None when it is not a proxy request."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        return (host, int(port)) if host and port.isdigit() else None
    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.hostname:
        return None
    return parts.hostname, parts.port or 80


class Proxy:
    def __init__(self, allow: Allowlist, log: TextIO) -> None:
        self.allow, self.log = allow, log

    def _record(self, host: str | None, port: int | None, allowed: bool, why: str) -> None:
        self.log.write(
            json.dumps({"at": time.time(), "host": host, "port": port, "allowed": allowed, "why": why}) + "\n"
        )
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
        if target is None:
            self._record(None, None, False, "not a proxy request")
            await _reply(writer, b"400 Bad Request", b"opslab egress proxy: CONNECT host:port or GET http://")
            return
        host, port = target
        if not self.allow.allows(host, port):
            self._record(host, port, False, "not in allowed_hosts")
            await _reply(writer, b"403 Forbidden", f"opslab: {host}:{port} is not in allowed_hosts".encode())
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            self._record(host, port, True, f"upstream unreachable: {exc}")
            await _reply(writer, b"502 Bad Gateway", f"opslab: {host}:{port}: {exc}".encode())
            return
        self._record(host, port, True, "allowed")
        if parts[0] == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:
            origin = urlsplit(parts[1])
            path = (origin.path or "/") + (f"?{origin.query}" if origin.query else "")
            up_writer.write(f"{parts[0]} {path} {parts[2]}\r\n".encode("latin-1") + rest)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


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


async def serve(socket_path: str, allow: Allowlist, log: TextIO) -> None:
    proxy = Proxy(allow, log)
    server = await asyncio.start_unix_server(proxy.handle, path=socket_path, limit=MAX_HEAD)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="opslab-egress-proxy")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    with open(args.log, "a", encoding="utf-8") as log, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.socket, Allowlist(tuple(args.allow)), log))


if __name__ == "__main__":
    main(sys.argv[1:])
