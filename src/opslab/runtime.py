"""Wiring: Settings -> engine, repositories, services and job kinds. Built by ``create_app``, the CLI and the
worker; nothing else constructs these.

Every capability that runs long work has a ``job.py`` with ``KIND`` and ``job_kind(deps) -> JobKind``;
``JOB_KINDS`` lists the factories and the runtime passes itself as their deps (``jobs.JobDeps``). A new
job kind is its ``job.py`` plus one line here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from opslab import canary, rca
from opslab.config import Settings
from opslab.jobs import (
    Backend,
    EmbeddedBackend,
    JobKind,
    JobRunner,
    JobService,
    KindFactory,
    LocalBus,
    ProgressBus,
    Reaper,
    RedisBus,
    RqBackend,
    owner_id,
)
from opslab.store import SqlJobStore, SqlRunRepository, make_engine, upgrade
from opslab.telemetry import PreparedRun, Redactor, TelemetryService

if TYPE_CHECKING:
    from opslab.llm import ChatClient

IngestObserver = Callable[[Sequence[PreparedRun]], None]

JOB_KINDS: tuple[KindFactory, ...] = (
    rca.job_kind,
    canary.job_kind,
)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    telemetry: TelemetryService
    runs: SqlRunRepository
    jobs: JobService
    job_store: SqlJobStore
    bus: ProgressBus
    backend: Backend
    kinds: dict[str, JobKind]
    ingest_observers: list[IngestObserver] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, *, migrate: bool = False) -> Runtime:
        lease_s = settings.job_lease_s
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
        if migrate:
            upgrade(engine)
        redactor = Redactor(
            enabled=settings.redact_secrets,
            extra_patterns=tuple(settings.redact_patterns),
            known_secrets=settings.secret_values(),
        )
        observers: list[IngestObserver] = []

        def notify(runs: Sequence[PreparedRun]) -> None:
            for fn in observers:
                fn(runs)

        runs = SqlRunRepository(engine)
        telemetry = TelemetryService(runs, redactor=redactor, on_ingest=notify)
        job_store = SqlJobStore(engine)
        kinds: dict[str, JobKind] = {}
        backend: Backend
        bus: ProgressBus
        if settings.redis_url:
            bus = RedisBus(settings.redis_url)
            rq = RqBackend(
                settings.redis_url, job_timeout_s=settings.job_timeout_s, queue_name=settings.job_queue
            )
            rq.bind_reaper(Reaper(store=job_store, bus=bus, lease_s=lease_s, resubmit=rq.submit))
            backend = rq
        else:
            bus = LocalBus()
            embedded = EmbeddedBackend(workers=settings.job_workers)
            runner = JobRunner(
                store=job_store,
                bus=bus,
                kinds=kinds,
                owner=owner_id("embedded"),
                lease_s=lease_s,
                resubmit=embedded.submit,
            )
            embedded.bind(runner, Reaper(store=job_store, bus=bus, lease_s=lease_s, resubmit=embedded.submit))
            backend = embedded
        jobs = JobService(store=job_store, backend=backend, bus=bus)
        rt = cls(
            settings=settings,
            engine=engine,
            telemetry=telemetry,
            runs=runs,
            jobs=jobs,
            job_store=job_store,
            bus=bus,
            backend=backend,
            kinds=kinds,
            ingest_observers=observers,
        )
        for factory in JOB_KINDS:
            kind = factory(rt)
            kinds[kind.name] = kind
        return rt

    def chat_model(self) -> ChatClient | None:
        """The OpenAI-compatible model of ``OPSLAB_LLM_BASE_URL``, or None when no LLM is configured."""
        if not self.settings.llm_base_url:
            return None
        from opslab.llm import ChatClient

        key = self.settings.llm_api_key.get_secret_value() if self.settings.llm_api_key else None
        return ChatClient(
            self.settings.llm_base_url,
            model=self.settings.llm_model or "default",
            api_key=key,
            timeout_s=self.settings.llm_timeout_s,
        )

    def worker_runner(self) -> tuple[JobRunner, Reaper]:
        """For `opslab worker`: a runner and reaper that resubmit through this runtime's backend."""
        lease_s = self.settings.job_lease_s
        runner = JobRunner(
            store=self.job_store,
            bus=self.bus,
            kinds=self.kinds,
            owner=owner_id("worker"),
            lease_s=lease_s,
            resubmit=self.backend.submit,
        )
        return runner, Reaper(
            store=self.job_store, bus=self.bus, lease_s=lease_s, resubmit=self.backend.submit
        )

    def close(self) -> None:
        self.engine.dispose()
