"""The CLI's two ways to reach telemetry: the service (``--url``, through ``opslab.client``) or the local
database directly, through the same service layer the API uses. Both answer with the same typed models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from opslab.telemetry import BatchResult, Overview, RunFilter, RunPage, RunSummary, Timeline

if TYPE_CHECKING:
    from opslab.config import Settings


class TelemetryBackend(Protocol):
    def ingest_batch(self, items: list[Any]) -> BatchResult: ...
    def get_run(self, run_id: str) -> RunSummary: ...
    def timeline(self, run_id: str) -> Timeline: ...
    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> RunPage: ...
    def overview(self, hours: int) -> Overview: ...
    def close(self) -> None: ...


class LocalBackend:
    def __init__(self, settings: Settings) -> None:
        from opslab.runtime import Runtime

        self.runtime = Runtime.build(settings, migrate=True)
        self.svc = self.runtime.telemetry

    def ingest_batch(self, items: list[Any]) -> BatchResult:
        return self.svc.ingest_batch(items)

    def get_run(self, run_id: str) -> RunSummary:
        return self.svc.summary(run_id)

    def timeline(self, run_id: str) -> Timeline:
        return self.svc.timeline(run_id)

    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> RunPage:
        return self.svc.list_runs(flt, cursor=cursor, limit=limit)

    def overview(self, hours: int) -> Overview:
        return self.svc.overview(hours)

    def close(self) -> None:
        self.runtime.close()


def open_backend(url: str | None, settings: Settings) -> TelemetryBackend:
    if url or settings.url:
        from opslab.client import OpslabClient  # httpx: only for the commands that talk HTTP

        return OpslabClient.from_settings(settings, url)
    return LocalBackend(settings)
