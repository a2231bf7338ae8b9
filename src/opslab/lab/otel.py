"""The run's OTLP/HTTP trace collector: harnesses at integration level ``otel`` (and ``sdk_*``) export
their spans to it, and each trial's spans land in its ``out/otel_spans.jsonl``.

    collector = OtlpCollector.start(run_dir, socket_dir=private)  # in the runner, before workers fork
    env.update(otel_env(collector.endpoint_for(trial_id)))
    ...
    collector.close()

One collector per run listens twice: on TCP ``127.0.0.1:<tcp_port>`` for trials that share the host's
network, and on a Unix socket (``unix_socket``, in the run's private folder under /tmp) that a bridge
in an isolated trial's network namespace, outside its sandbox, forwards to. Spans are told apart by URL
path: a trial's endpoint is ``http://127.0.0.1:<port>/trials/<trial_id>``, and the SDKs append
``/v1/traces`` to it. Serving is
threads (a thread per connection, kept alive between exports): the runner's process stays free of an
event loop, and forked workers inherit nothing that runs. Requests are handled by
``otel_receiver.TraceReceiver``; nothing a client sends can stop the server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from opslab.errors import InvalidInput, OpslabError, PayloadTooLarge

if TYPE_CHECKING:
    from opslab.lab.otel_receiver import TraceReceiver

Via = Literal["tcp", "unix"]
SOCKET_NAME = "otlp.sock"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS
IDLE_TIMEOUT_S = 120.0  # a kept-alive connection with no request for this long is closed
_POLL_S = 0.1


def otel_env(endpoint: str) -> dict[str, str]:
    """The variables that point a harness's OpenTelemetry SDK at ``endpoint`` (OTLP/HTTP, protobuf).

    The traces endpoint is set as well as the base one, so that a variable of the runner's environment
    (``passthrough`` profile) cannot divert the spans; metrics and logs exporters are off: the lab keeps
    traces only."""
    base = endpoint.rstrip("/")
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": base,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": base + "/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }


class OtlpCollector:
    """A running collector (see the module). ``close()`` stops it; a context manager too."""

    def __init__(self, receiver: TraceReceiver, tcp: _TcpServer, unix: _UnixServer, socket_dir: str) -> None:
        self.receiver = receiver
        self._servers: tuple[_Serving, ...] = (tcp, unix)
        self.tcp_port: int = tcp.server_address[1]
        self.unix_socket: str = os.path.join(socket_dir, SOCKET_NAME)
        self._closed = False
        self._threads = [
            threading.Thread(target=s.serve_forever, args=(_POLL_S,), name=f"opslab-otlp-{i}", daemon=True)
            for i, s in enumerate(self._servers)
        ]
        for t in self._threads:
            t.start()

    @classmethod
    def start(cls, run_dir: str | Path, *, socket_dir: str, port: int = 0) -> OtlpCollector:
        """Listen for the trials of the run in ``run_dir`` (``port`` 0: any free port). Loopback only:
        spans are the trial's data, not the network's. The Unix socket goes in ``socket_dir`` (the run's
        private folder, ``RunScratch``: a short path no trial sees)."""
        from opslab.lab.otel_receiver import TraceReceiver

        receiver = TraceReceiver(run_dir)
        path = os.path.join(socket_dir, SOCKET_NAME)
        tcp = None
        try:
            if len(os.fsencode(path)) >= MAX_SOCKET_PATH:
                raise InvalidInput.for_field("unix_socket", f"{path!r} is too long for a Unix socket")
            tcp = _TcpServer(("127.0.0.1", port), receiver)
            unix = _UnixServer(path, receiver)
        except BaseException:
            if tcp is not None:
                tcp.server_close()
            raise
        return cls(receiver, tcp, unix, socket_dir)

    def endpoint_for(self, trial_id: str, *, via: Via = "tcp", port: int | None = None) -> str:
        """The trial's ``OTEL_EXPORTER_OTLP_ENDPOINT``. ``via="tcp"``: this collector's port, for trials on
        the host's network. ``via="unix"``: for a trial in its own network namespace, where a bridge
        listens on 127.0.0.1:``port`` and forwards to ``unix_socket`` (by default the same number as
        ``tcp_port``, which is free in a fresh namespace)."""
        from opslab.lab.otel_receiver import TRIAL_ID

        if not TRIAL_ID.fullmatch(trial_id):
            raise InvalidInput.for_field("trial_id", f"{trial_id!r} cannot be a URL path segment")
        if via == "tcp" and port not in (None, self.tcp_port):
            raise InvalidInput.for_field("port", "the TCP endpoint is the collector's own port")
        return f"http://127.0.0.1:{port or self.tcp_port}/trials/{trial_id}"

    def close(self) -> None:
        """Stop listening, end open connections and remove the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for s in self._servers:
            s.shutdown()
            s.server_close()
            s.drop_connections()
        for t in self._threads:
            t.join()
        with contextlib.suppress(OSError):
            os.unlink(self.unix_socket)

    def __enter__(self) -> OtlpCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Serving(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """What both listeners share: a thread per connection, the receiver, quiet errors, and the open
    connections (so that ``close`` ends kept-alive ones instead of leaving their threads to time out)."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # trials that finish together export together
    receiver: TraceReceiver

    def attach(self, receiver: TraceReceiver) -> None:
        self.receiver = receiver
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._open_lock:
            (self._open.add if add else self._open.discard)(conn)

    def drop_connections(self) -> None:
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up mid-request is its own problem; the server goes on


class _TcpServer(_Serving, socketserver.TCPServer):
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], receiver: TraceReceiver) -> None:
        self.attach(receiver)
        socketserver.TCPServer.__init__(self, address, _Handler)


class _UnixServer(_Serving, socketserver.UnixStreamServer):
    def __init__(self, path: str, receiver: TraceReceiver) -> None:
        self.attach(receiver)
        socketserver.UnixStreamServer.__init__(self, path, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: an exporter sends every batch over one connection
    timeout = IDLE_TIMEOUT_S
    server: _Serving

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_POST

    def _serve(self) -> None:
        from opslab.lab.otel_receiver import MAX_BODY, http_status, refusal

        headers = self.headers
        protobuf = "protobuf" in headers.get("Content-Type", "")
        try:
            body = self._body(MAX_BODY)
        except OpslabError as exc:  # a length that is not a number, broken chunks, too large
            self.close_connection = True  # the rest of the request is still on the wire
            reply = refusal(http_status(exc), exc.message, protobuf)
        else:
            try:
                reply = self.server.receiver.handle(
                    self.command,
                    self.path,
                    headers.get("Content-Type", ""),
                    headers.get("Content-Encoding", ""),
                    body,
                )
            except Exception as exc:  # noqa: BLE001 - a bug or a full disk: one refused export, not a dead server
                reply = refusal(500, f"{type(exc).__name__}: {exc}"[:500], protobuf)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            return self._chunked(limit)
        length = _size(self.headers.get("Content-Length") or "0", 10)
        if length > limit:
            raise PayloadTooLarge(f"the request body is too large: {length} bytes, at most {limit}")
        return self.rfile.read(length)

    def _chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            n = _size(self.rfile.readline(100).split(b";", 1)[0].strip().decode("latin-1"), 16)
            if n == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(parts)
            total += n
            if total > limit:
                raise PayloadTooLarge(f"the request body is too large: over {limit} bytes")
            parts.append(self.rfile.read(n))
            self.rfile.readline(3)

    def log_message(self, format: str, *args: object) -> None:
        pass  # per-request logging costs more than the request; refusals are in the replies


def _size(text: str, base: int) -> int:
    try:
        n = int(text, base)
    except ValueError:
        n = -1
    if n < 0:
        raise InvalidInput.for_field("content-length", f"{text[:40]!r} is not a size")
    return n
