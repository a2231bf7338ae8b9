"""The CLI's two ways to reach telemetry: the HTTP service (``--url``) or the local database directly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx

from opslab import errors
from opslab.telemetry import RunFilter

if TYPE_CHECKING:
    from opslab.config import Settings


class TelemetryBackend(Protocol):
    def ingest_batch(self, items: list[Any]) -> dict[str, Any]: ...
    def summary(self, run_id: str) -> dict[str, Any]: ...
    def timeline(self, run_id: str) -> dict[str, Any]: ...
    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> dict[str, Any]: ...
    def overview(self, hours: int) -> dict[str, Any]: ...
    def close(self) -> None: ...


def raise_for_error(response: httpx.Response) -> None:
    """Turn the service's ``{"error": …}`` body back into the same exception the service raised."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = response.text
    raise errors.from_wire(response.status_code, body)


class HttpBackend:
    def __init__(self, url: str, settings: Settings, *, timeout: float = 60.0) -> None:
        headers = {}
        if settings.api_token:
            headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
        if settings.ingest_secret:
            headers["X-Ingest-Secret"] = settings.ingest_secret.get_secret_value()
        self.client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise errors.Unavailable(f"cannot reach the service at {self.client.base_url}: {exc}") from None
        raise_for_error(response)
        return response.json()

    def ingest_batch(self, items: list[Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/agent-runs/batch", json=items)
        return result

    def summary(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/agent-runs/{_quote(run_id)}")
        return result

    def timeline(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/agent-runs/{_quote(run_id)}/timeline")
        return result

    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> dict[str, Any]:
        params = {k: v for k, v in flt.model_dump(mode="json").items() if v is not None}
        params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = self.request("GET", "/agent-runs", params=params)
        return result

    def overview(self, hours: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/metrics/overview", params={"hours": hours})
        return result

    def close(self) -> None:
        self.client.close()


class LocalBackend:
    def __init__(self, settings: Settings) -> None:
        from opslab.runtime import Runtime

        self.runtime = Runtime.build(settings, migrate=True)
        self.svc = self.runtime.telemetry

    def ingest_batch(self, items: list[Any]) -> dict[str, Any]:
        return self.svc.ingest_batch(items).model_dump(mode="json")

    def summary(self, run_id: str) -> dict[str, Any]:
        return self.svc.summary(run_id).model_dump(mode="json")

    def timeline(self, run_id: str) -> dict[str, Any]:
        return self.svc.timeline(run_id).model_dump(mode="json")

    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> dict[str, Any]:
        return self.svc.list_runs(flt, cursor=cursor, limit=limit).model_dump(mode="json")

    def overview(self, hours: int) -> dict[str, Any]:
        return self.svc.overview(hours).model_dump(mode="json")

    def close(self) -> None:
        self.runtime.close()


def _quote(segment: str) -> str:
    return quote(segment, safe="")


def open_backend(url: str | None, settings: Settings) -> TelemetryBackend:
    target = url or settings.url
    return HttpBackend(target, settings) if target else LocalBackend(settings)
