"""Wiring: Settings -> engine, repositories, services and job kinds. Built by ``create_app``, the CLI and the
worker; nothing else constructs these.

Every capability that runs long work has a ``job.py`` with ``KIND`` and ``job_kind(deps) -> JobKind``;
``JOB_KINDS`` lists the factories and the runtime passes itself as their deps (``jobs.JobDeps``). A new
job kind is its ``job.py`` plus one line here."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from opslab import canary, lab, rca
from opslab.config import Settings
from opslab.errors import Conflict, InvalidInput
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
from opslab.store import (
    SqlIncidentStore,
    SqlJobStore,
    SqlRunRepository,
    make_engine,
    open_checkpointer,
    upgrade,
)
from opslab.telemetry import PreparedRun, Redactor, TelemetryService

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from opslab.autoops import AutoOps
    from opslab.llm import ChatClient
    from opslab.responder import Responder, ResponderConfig
    from opslab.telemetry import AgentRunIn

IngestObserver = Callable[[Sequence[PreparedRun]], None]

JOB_KINDS: tuple[KindFactory, ...] = (
    rca.job_kind,
    canary.job_kind,
    lab.job_kind,
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
    metrics_registry: CollectorRegistry | None = None
    _autoops: AutoOps | None = None
    _autoops_lock: threading.Lock = field(default_factory=threading.Lock)
    _responder: Responder | None = None
    _responder_lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: ExitStack = field(default_factory=ExitStack)

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
        from opslab.llm import ChatClient

        return ChatClient.from_settings(self.settings)

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

    @property
    def incidents(self) -> SqlIncidentStore:
        return SqlIncidentStore(self.engine)

    def responder(self) -> Responder:
        """The one responder of this process, built on first use (target and action server from the
        settings, else from the sandbox's ``endpoints.json`` in the data dir)."""
        with self._responder_lock:
            if self._responder is None:
                self._responder = self._build_responder()
            return self._responder

    def _build_responder(self) -> Responder:
        from opslab.knowledge import KnowledgeBase
        from opslab.responder import HttpActionExecutor, HttpTargetProbe, Responder, WebhookNotifier

        s = self.settings
        target, actions, token = responder_endpoints(s)
        knowledge_dir = s.resolved_knowledge_dir
        extra = [s.responder_runbooks_path] if s.responder_runbooks_path else []
        checkpointer = self._closing.enter_context(open_checkpointer(s.resolved_database_url))
        notify = WebhookNotifier(s.responder_webhook_url) if s.responder_webhook_url else None
        if notify is not None:
            self._closing.callback(notify.close)

        def record_run(run: AgentRunIn) -> None:
            self.telemetry.ingest_runs([run], source="native")

        responder = Responder(
            probe=HttpTargetProbe(target),
            actions=HttpActionExecutor(actions, token),
            store=self.incidents,
            knowledge=KnowledgeBase.load(knowledge_dir, extra=extra, retrieval=s.knowledge_retrieval),
            knowledge_dir=knowledge_dir,
            extra_knowledge=extra,
            checkpointer=checkpointer,
            config=responder_config(s),
            chat=self.chat_model(),
            record_run=record_run,
            on_progress=notify,
        )
        if s.responder_kill_switch:
            responder.halt(reason="started with OPSLAB_RESPONDER_KILL_SWITCH=true")
        return responder

    def autoops(self) -> AutoOps:
        """The AutoOps controller of this process: the simulated CI runner, the optimizer with its state in
        the database, the knowledge base, the build log; its series on the service's registry."""
        with self._autoops_lock:
            if self._autoops is None:
                from opslab.autoops import AutoOps, BuildMetrics, ThompsonOptimizer
                from opslab.knowledge import KnowledgeBase
                from opslab.sandbox import BuildSimulator
                from opslab.store import SqlBanditStore, SqlBuildLog

                s = self.settings
                self._autoops = AutoOps(
                    runner=BuildSimulator(seed=s.autoops_seed),
                    optimizer=ThompsonOptimizer(store=SqlBanditStore(self.engine), seed=s.autoops_seed),
                    knowledge=KnowledgeBase.load(s.resolved_knowledge_dir, retrieval=s.knowledge_retrieval),
                    builds=SqlBuildLog(self.engine),
                    observer=BuildMetrics(registry=self.metrics_registry),
                    chat=self.chat_model(),
                )
            return self._autoops

    def close(self) -> None:
        self._closing.close()
        self.engine.dispose()


def responder_config(settings: Settings) -> ResponderConfig:
    """The responder's knobs from the settings (the seed's names are aliases there)."""
    from opslab.responder import ResponderConfig

    s = settings
    poll = s.responder_poll_interval_s
    settle = s.responder_settle_s if s.responder_settle_s >= 0 else min(2 * poll, 30.0)
    return ResponderConfig(
        poll_interval_s=poll,
        error_rate_threshold=s.responder_error_rate_threshold,
        consecutive=s.responder_consecutive,
        settle_s=settle,
        verify_interval_s=min(poll, 10.0),
        dry_run=s.responder_dry_run,
        auto_approve=s.responder_auto_approve,
        max_actions=s.responder_max_actions,
        cooldown_s=s.responder_cooldown_s,
    )


def responder_endpoints(settings: Settings) -> tuple[str, str, str]:
    """Target URL, action server URL and its token: from the settings, or else from what ``opslab sandbox
    up`` wrote under the same data dir (``sandbox/endpoints.json``, ``sandbox/action-token``). Never the
    chaos server: the responder does not know it exists."""
    folder = settings.data_dir / "sandbox"
    found: dict[str, object] = {}
    endpoints = folder / "endpoints.json"
    if endpoints.is_file():
        try:
            loaded = json.loads(endpoints.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput.for_field(str(endpoints), f"unreadable: {exc}") from None
        found = loaded if isinstance(loaded, dict) else {}
    target = settings.responder_target_url or _str(found.get("target"))
    actions = settings.responder_action_url or _str(found.get("actions"))
    token = (
        settings.action_token.get_secret_value()
        if settings.action_token is not None
        else _read_token(folder / "action-token")
    )
    missing = [
        name
        for name, value in (
            ("OPSLAB_RESPONDER_TARGET_URL", target),
            ("OPSLAB_RESPONDER_ACTION_URL", actions),
            ("OPSLAB_ACTION_TOKEN", token),
        )
        if not value
    ]
    if missing:
        # A state of this service, not an outage: 409, the same answer every time until it is configured.
        raise Conflict(
            f"the responder is not configured: no {missing[0]}; set it, or start `opslab sandbox up` with "
            f"the same OPSLAB_DATA_DIR ({settings.data_dir})",
            details={"missing": missing},
        )
    return str(target), str(actions), str(token)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _read_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
