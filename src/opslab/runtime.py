"""Wiring: Settings -> engine, repositories and services. Built by ``create_app``, the CLI and the worker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from opslab.config import Settings
from opslab.store import SqlRunRepository, make_engine, upgrade
from opslab.telemetry import PreparedRun, Redactor, TelemetryService

IngestObserver = Callable[[Sequence[PreparedRun]], None]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    telemetry: TelemetryService
    ingest_observers: list[IngestObserver] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, *, migrate: bool = False) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
        if migrate:
            upgrade(engine)
        redactor = Redactor(enabled=settings.redact_secrets, extra_patterns=tuple(settings.redact_patterns))
        observers: list[IngestObserver] = []

        def notify(runs: Sequence[PreparedRun]) -> None:
            for fn in observers:
                fn(runs)

        telemetry = TelemetryService(SqlRunRepository(engine), redactor=redactor, on_ingest=notify)
        return cls(settings=settings, engine=engine, telemetry=telemetry, ingest_observers=observers)

    def close(self) -> None:
        self.engine.dispose()
