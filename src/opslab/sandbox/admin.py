"""The one client of a sandbox service's ``/admin/*`` routes (``X-Sandbox-Token``), shared by the chaos
server and the action server: its refusals come back as the same ``opslab.errors`` exceptions."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import JsonValue

from opslab.errors import Unavailable, from_wire
from opslab.sandbox.app import TOKEN_HEADER


class AdminClient:
    def __init__(self, base_url: str, token: str, *, part: str, timeout_s: float = 10.0) -> None:
        self.part = part
        self.client = httpx.Client(base_url=base_url, headers={TOKEN_HEADER: token}, timeout=timeout_s)

    def post(self, path: str, body: dict[str, JsonValue] | None = None) -> dict[str, Any]:
        try:
            r = self.client.post(path, json=body or {})
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the sandbox {self.part} is unreachable at {self.client.base_url}: "
                f"{type(exc).__name__}: {exc}",
                details={"part": self.part},
            ) from None
        try:
            data: dict[str, Any] = r.json()
        except ValueError:
            data = {}
        if r.status_code >= 400:
            raise from_wire(r.status_code, data)
        return data

    def get(self, path: str) -> dict[str, Any]:
        try:
            r = self.client.get(path)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the sandbox {self.part} is unreachable: {exc}", details={"part": self.part}
            ) from None
        data: dict[str, Any] = r.json()
        if r.status_code >= 400:
            raise from_wire(r.status_code, data)
        return data

    def close(self) -> None:
        self.client.close()
