"""A service that is not the sandbox, for canary tests: its own flag names (``cache_mode``, ``pool``) read
with GET and replaced with PUT at ``/config/flags``, bearer auth on everything but ``/healthz``, and a POST
``/v1/query`` whose latency follows ``cache_mode`` (``warm`` is ``speedup`` faster). Also a webhook
receiver. Both are real HTTP servers on free ports (``http.server`` threads).

The flag service runs in a process of its own (``python -m tests.flag_service``), as a real service does:
a load generator in the test's process never shares an interpreter, nor its GIL, with the server it
measures. The test reads what the service saw (its flags, hits, flag writes) from ``GET /__state``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.ports import free_port

TOKEN = "tok-test-8d0c6e1f4b2a"
BASELINE = {"cache_mode": "cold", "pool": 4}


@dataclass
class FlagService:
    url: str = ""
    flags: dict[str, Any] = field(default_factory=lambda: dict(BASELINE))
    slow_ms: float = 120.0  # large beside a busy machine's scheduling noise (tens of ms at worst)
    speedup: float = 0.30
    hits: Counter[str] = field(default_factory=Counter)
    flag_writes: list[dict[str, Any]] = field(default_factory=list)
    # Once the candidate is live, writes to the flags route fail (a target that cannot be restored).
    stuck_after_candidate: bool = False
    # Answer /v1/slow with this status (a status the plan may list as an error).
    slow_status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(svc: FlagService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: object, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            return json.loads(raw) if raw else None

        def _authed(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                return True
            # An error that echoes what it got, as careless services do: the canary must mask it.
            self._send(401, {"error": f"bad credentials {self.headers.get('Authorization')}"})
            return False

        def do_GET(self) -> None:
            if self.path == "/healthz":
                return self._send(200, {"ok": True})
            if self.path == "/__state":  # what the test reads of the service
                with svc.lock:
                    return self._send(
                        200, {"flags": svc.flags, "hits": dict(svc.hits), "flag_writes": svc.flag_writes}
                    )
            if self.path == "/config/flags" and self._authed():
                with svc.lock:
                    return self._send(200, dict(svc.flags))
            if self.path != "/config/flags":
                self._send(404, {"error": "no route"})

        def do_PUT(self) -> None:
            body = self._body()
            if self.path != "/config/flags":
                return self._send(404, {"error": "no route"})
            if not self._authed():
                return None
            with svc.lock:
                if svc.stuck_after_candidate and svc.flags.get("cache_mode") == "warm":
                    return self._send(503, {"error": "flag store unavailable"})
                svc.flags = dict(body)
                svc.flag_writes.append(dict(body))
                return self._send(200, dict(svc.flags))

        def do_POST(self) -> None:
            self._body()
            if not self._authed():
                return None
            with svc.lock:
                svc.hits[self.path] += 1
                warm = svc.flags.get("cache_mode") == "warm"
                status = svc.slow_status if self.path == "/v1/slow" else 200
            began = time.perf_counter()
            time.sleep(svc.slow_ms * (1 - svc.speedup if warm else 1.0) / 1000)
            # As a service instrumented with the W3C Server-Timing header reports its own time.
            took_ms = (time.perf_counter() - began) * 1000
            self._send(status, {"ok": status < 400}, {"Server-Timing": f"app;dur={took_ms:.3f}"})

    return Handler


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


class RemoteFlagService:
    """The test's view of a flag service running in its own process."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = httpx.get(self.url + "/__state", timeout=10).json()
        return state

    @property
    def flags(self) -> dict[str, Any]:
        return dict(self._state()["flags"])

    @property
    def hits(self) -> Counter[str]:
        return Counter(self._state()["hits"])

    @property
    def flag_writes(self) -> list[dict[str, Any]]:
        return list(self._state()["flag_writes"])


@contextmanager
def flag_service(**options: Any) -> Iterator[RemoteFlagService]:
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.flag_service", str(port), json.dumps(options)], cwd=root, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/healthz", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert child.poll() is None and time.monotonic() < deadline, "the flag service did not start"
                time.sleep(0.05)
        yield RemoteFlagService(url)
    finally:
        child.terminate()
        child.wait(15)


def _main(port: int, options: dict[str, Any]) -> None:
    svc = FlagService(**options)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(svc))
    server.daemon_threads = True
    svc.url = f"http://127.0.0.1:{port}"
    server.serve_forever()


@dataclass
class Webhook:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            hook.received.append({"path": self.path, **json.loads(self.rfile.read(n))})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    with serve(Handler) as url:
        hook.url = url
        yield hook


def real_service_plan(url: str, **changes: Any) -> dict[str, Any]:
    """A plan for the flag service: its flag names, PUT, the bearer token from ``${CANARY_TOKEN}``."""
    plan: dict[str, Any] = {
        "experiment": {
            "qps": 100.0,
            "window_sec": 2.0,
            "rounds": 2,
            "warmup_sec": 0.3,
            "flags": {"cache_mode": "warm", "pool": 4},
        },
        "target": {
            "base_url": url,
            "flags_path": "/config/flags",
            "flags_method": "PUT",
            "health_path": "/healthz",
            "headers": {"Authorization": "Bearer ${CANARY_TOKEN}"},
            "requests": [{"method": "POST", "path": "/v1/query", "body": {"q": "x"}, "weight": 1}],
        },
        "time_budget": 60,
        "seed": 3,
    }
    for key, value in changes.items():
        plan[key] = {**plan[key], **value} if isinstance(value, dict) and key in plan else value
    return plan


if __name__ == "__main__":
    _main(int(sys.argv[1]), json.loads(sys.argv[2]))
