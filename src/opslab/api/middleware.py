"""Pure ASGI middleware: request body cap (413) and Prometheus request metrics."""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opslab.errors import PayloadTooLarge


class ApiMetrics:
    """The service's Prometheus collectors, on a registry of its own (several apps may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "opslab_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.ingested = Counter(
            "opslab_ingested_runs_total",
            "Agent runs ingested, by run status and source",
            ["status", "source"],
            registry=self.registry,
        )


async def _reply(send: Send, status: int, code: str, message: str, details: dict[str, Any]) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413, by Content-Length up front or by counting a stream."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        details = {"limit_bytes": self.max_bytes}
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    await _reply(send, 400, "invalid_input", "content-length: not a number", {})
                    return
                if too_big:
                    await _reply(
                        send, 413, "payload_too_large", f"body: larger than {self.max_bytes} bytes", details
                    )
                    return
        seen = 0

        async def counted() -> Message:
            # A chunked body has no Content-Length: count it as it streams in. The error surfaces in
            # the route's read of the body and goes through the one exception handler.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"body: larger than {self.max_bytes} bytes", details=details)
            return message

        await self.app(scope, counted, send)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope.get("method", ""), template, str(status)).observe(
                time.perf_counter() - start
            )
