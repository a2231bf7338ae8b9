"""The CLI's two ways to reach telemetry: the service (``--url``, through ``opslab.client``) or the local
database directly, through the same service layer the API uses. Both answer with the same typed models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from opslab.cli.context import local_runtime
from opslab.telemetry import (
    BatchResult,
    Overview,
    PruneResult,
    RunFilter,
    RunPage,
    RunSummary,
    Timeline,
    parse_duration,
)

if TYPE_CHECKING:
    from opslab.config import Settings


class TelemetryBackend(Protocol):
    def ingest_batch(self, items: list[Any]) -> BatchResult: ...
    def get_run(self, run_id: str) -> RunSummary: ...
    def timeline(self, run_id: str) -> Timeline: ...
    def list_runs(self, flt: RunFilter, *, cursor: str | None, limit: int) -> RunPage: ...
    def overview(self, hours: int) -> Overview: ...
    def export_run(self, run_id: str, *, format: str = "json") -> dict[str, Any]: ...  # noqa: A002
    def delete_run(self, run_id: str) -> None: ...
    def prune_runs(self, older_than: str) -> PruneResult: ...
    def close(self) -> None: ...


class LocalBackend:
    def __init__(self, settings: Settings) -> None:
        self.runtime = local_runtime(settings)
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

    def export_run(self, run_id: str, *, format: str = "json") -> dict[str, Any]:  # noqa: A002
        if format == "otlp":
            return self.svc.export_otlp(run_id)
        from opslab.rca import KIND, rca_run_view

        exported = self.svc.export(run_id)
        exported.rca = [
            rca_run_view(j).model_dump(mode="json") for j in self.runtime.jobs.list(kind=KIND, subject=run_id)
        ]
        return exported.model_dump(mode="json")

    def delete_run(self, run_id: str) -> None:
        self.svc.delete(run_id)

    def prune_runs(self, older_than: str) -> PruneResult:
        deleted = self.svc.prune(older_than=parse_duration(older_than, "--older-than"))
        return PruneResult(deleted=deleted, older_than=older_than)

    def close(self) -> None:
        self.runtime.close()


def open_backend(url: str | None, settings: Settings) -> TelemetryBackend:
    if url or settings.url:
        from opslab.client import OpslabClient  # httpx: only for the commands that talk HTTP

        return OpslabClient.from_settings(settings, url)
    return LocalBackend(settings)
