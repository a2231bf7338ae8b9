"""Wiring: Settings -> engine, repositories, services and job kinds. Built by ``create_app``, the CLI and the
worker; nothing else constructs these."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from opslab.config import Settings
from opslab.jobs import (
    Backend,
    EmbeddedBackend,
    JobKind,
    JobRunner,
    JobService,
    LocalBus,
    Progress,
    ProgressBus,
    Reaper,
    RedisBus,
    owner_id,
)
from opslab.store import SqlRunRepository, make_engine, upgrade
from opslab.store.jobs import SqlJobStore
from opslab.telemetry import PreparedRun, Redactor, TelemetryService

IngestObserver = Callable[[Sequence[PreparedRun]], None]


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
        redactor = Redactor(enabled=settings.redact_secrets, extra_patterns=tuple(settings.redact_patterns))
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
            from opslab.jobs.rq_backend import RqBackend

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
        kinds.update(rt.job_kinds())
        return rt

    def job_kinds(self) -> dict[str, JobKind]:
        import opslab.judge  # noqa: F401 - loads NumPy/SciPy now, not inside the first RCA
        from opslab.rca import service as rca

        svc = rca.RcaService(self.runs, enhancer=self.llm_enhancer())

        def run_rca(payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
            return svc.handle(payload, lambda step, pct: progress.report(step, pct))

        def run_canary_job(payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
            from opslab.canary import HttpTarget, parse_plan, run_canary

            plan = parse_plan(payload["plan"])
            target = HttpTarget(plan.target)
            reports = self.settings.data_dir / "canary" / "reports" / str(payload["run_key"])
            try:
                result = run_canary(
                    plan,
                    target,
                    reports_dir=reports,
                    history_path=self.settings.data_dir / "canary" / "history.jsonl",
                    dry_run=bool(payload.get("dry_run")),
                    progress=lambda step, pct, msg: progress.report(step, pct, msg),
                )
            finally:
                target.close()
            out: dict[str, Any] = json.loads(
                json.dumps({k: v for k, v in result.items() if k != "plan"}, default=str)
            )
            return out

        return {
            rca.KIND: JobKind(rca.KIND, run_rca, done_step=rca.DONE_STEP, failed_step="RCA failed"),
            "canary": JobKind(
                "canary", run_canary_job, done_step="Canary complete", failed_step="Canary failed"
            ),
        }

    def llm_enhancer(self) -> Any:
        """The optional LLM pass over RCA reports, when ``OPSLAB_LLM_BASE_URL`` is set."""
        if not self.settings.llm_base_url:
            return None
        from opslab.llm import ChatClient
        from opslab.rca.llm import LlmEnhancer

        key = self.settings.llm_api_key.get_secret_value() if self.settings.llm_api_key else None
        client = ChatClient(
            self.settings.llm_base_url,
            model=self.settings.llm_model or "default",
            api_key=key,
            timeout_s=self.settings.llm_timeout_s,
        )
        return LlmEnhancer(client)

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
