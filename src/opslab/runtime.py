"""Wiring: Settings -> engine, repositories, services and work. Built by ``create_app``, the CLI and the
worker; nothing else constructs these.

Every capability that runs long work has a ``job.py`` with its ``WorkKind`` and a factory
``…_work(deps) -> Work``, declared in ``opslab.capabilities`` (``work``); the runtime builds every declared
factory when its work is first asked for (``jobs.Works``: a command that runs no job imports none of it)
and passes itself as their deps (it satisfies every capability's deps Protocol: ``jobs.WorkDeps``,
``canary.CanaryDeps``, ``lab.LabDeps``)."""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from sqlalchemy import Engine

from opslab.artifacts import ArtifactStore, open_store
from opslab.capabilities import CAPABILITIES, PLATFORM, load
from opslab.config import Settings, process_environment
from opslab.errors import Conflict, InvalidInput
from opslab.jobs import (
    AnyWork,
    Backend,
    EmbeddedBackend,
    Job,
    JobRunner,
    JobService,
    LeaseLost,
    LocalBus,
    ProgressBus,
    Reaper,
    RedisBus,
    RqBackend,
    ServiceRouting,
    TaskQueue,
    WorkFactory,
    Works,
    owner_id,
)
from opslab.store import (
    SqlJobStore,
    SqlLeaseStore,
    SqlRunRepository,
    SqlServiceState,
    make_engine,
    upgrade,
)
from opslab.telemetry import (
    IngestLimits,
    PreparedRun,
    Redactor,
    TelemetryService,
    load_prices,
    plan_share,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from pydantic import JsonValue

    from opslab.autoops import AutoOps
    from opslab.canary import (
        GuardedTarget,
        HistoryRecord,
        Plan,
        Recovery,
        RunRecord,
        RunSecrets,
        Target,
        TargetClient,
    )
    from opslab.lab import TrialQueue
    from opslab.llm import ChatClient
    from opslab.responder import (
        ActionExecutor,
        ActionResult,
        ActionSpec,
        Liveness,
        Responder,
        ResponderConfig,
    )
    from opslab.store import SqlIncidentStore, SqlLabRunIndex
    from opslab.telemetry import AgentRunIn

IngestObserver = Callable[[Sequence[PreparedRun]], None]


def work_factories() -> list[WorkFactory]:
    """The work factories the capabilities declare (``opslab.capabilities``), the service's own first."""
    found: list[WorkFactory] = []
    for cap in (PLATFORM, *CAPABILITIES):
        for ref in cap.work:
            factory = load(ref)
            if not callable(factory):
                raise TypeError(f"{cap.name}: {ref} is not a work factory")
            found.append(cast(WorkFactory, factory))
    return found


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
    routing: ServiceRouting
    works: Works
    leases: SqlLeaseStore
    service_states: SqlServiceState
    ingest_observers: list[IngestObserver] = field(default_factory=list)
    metrics_registry: CollectorRegistry | None = None
    _autoops: AutoOps | None = None
    _autoops_lock: threading.Lock = field(default_factory=threading.Lock)
    _responder: Responder | None = None
    # Set while this process holds the responder's lease: raises ``LeaseLost`` once it does not.
    responder_fence: Callable[[], None] | None = None
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
        telemetry = TelemetryService(
            runs,
            redactor=redactor,
            on_ingest=notify,
            prices=load_prices(settings.price_table),
            limits=IngestLimits(
                max_batch_items=settings.max_batch_items, max_otlp_spans=settings.max_otlp_spans
            ),
        )
        job_store = SqlJobStore(engine)
        # Made from the capabilities' factories when first asked for, with this runtime as their deps.
        works = Works(lambda: [factory(rt) for factory in work_factories()])
        service_kinds = works.services  # the work leased services take themselves
        backend: Backend
        bus: ProgressBus
        reaper: Reaper
        if settings.redis_url:
            bus = RedisBus(settings.redis_url)
            rq = RqBackend(
                settings.redis_url, job_timeout_s=settings.job_timeout_s, queue_name=settings.job_queue
            )
            routing = ServiceRouting(rq, service_kinds)
            reaper = Reaper(store=job_store, bus=bus, lease_s=lease_s, resubmit=_resubmit(job_store, routing))
            rq.bind_reaper(reaper)
            backend = rq
        else:
            bus = LocalBus()
            embedded = EmbeddedBackend(workers=settings.job_workers)
            routing = ServiceRouting(embedded, service_kinds)
            resubmit = _resubmit(job_store, routing)
            runner = JobRunner(
                store=job_store,
                bus=bus,
                works=works,
                owner=owner_id("embedded"),
                lease_s=lease_s,
                resubmit=resubmit,
            )
            reaper = Reaper(store=job_store, bus=bus, lease_s=lease_s, resubmit=resubmit)
            embedded.bind(runner, reaper)
            backend = embedded
        reaper.ensure = routing.ensure_queued
        jobs = JobService(store=job_store, backend=routing, bus=bus)
        rt = cls(
            settings=settings,
            engine=engine,
            telemetry=telemetry,
            runs=runs,
            jobs=jobs,
            job_store=job_store,
            bus=bus,
            backend=backend,
            routing=routing,
            works=works,
            leases=SqlLeaseStore(engine),
            service_states=SqlServiceState(engine),
            ingest_observers=observers,
        )
        return rt

    def chat_model(self) -> ChatClient | None:
        """The OpenAI-compatible model of ``OPSLAB_LLM_BASE_URL``, or None when no LLM is configured."""
        from opslab.llm import ChatClient

        return ChatClient.from_settings(self.settings)

    def environment(self) -> Mapping[str, str]:
        """This process's environment: where plans' ``${ENV}`` references and trials' variables come from."""
        return process_environment()

    def canary_target(self, plan_target: Target, secrets: RunSecrets, *, seed: int) -> TargetClient:
        from opslab.canary import HttpTarget

        return HttpTarget(plan_target, secrets, seed=seed)

    # -- canaries: a hold on the target, the history indexed, targets of dead canaries put back ---------

    @contextmanager
    def canary_hold(self, plan: Plan, target: TargetClient, *, run_key: str) -> Iterator[GuardedTarget]:
        """``target`` held for one canary (``canary.hold_target``), after putting back what an earlier
        canary on it abandoned."""
        from opslab.canary import hold_target

        with hold_target(
            plan,
            target,
            self.leases,
            holder=owner_id(f"canary:{run_key}"),
            run_key=run_key,
            ttl_s=self.settings.canary_lease_s,
            recover=lambda name: self.recover_canaries(name=name),
        ) as held:
            yield held

    def canary_index(self, target: str, record: HistoryRecord) -> None:
        from opslab.store import SqlCanaryHistory

        SqlCanaryHistory(self.engine).append(target, record)

    def canary_history(self, *, limit: int = 1000) -> list[HistoryRecord]:
        from opslab.store import SqlCanaryHistory

        return SqlCanaryHistory(self.engine).read(limit=limit)

    def recover_canaries(self, *, name: str | None = None) -> list[Recovery]:
        """Restore the baseline flags of every target (or ``name``) a dead canary left changed; each
        recovery is a history row (in this data dir's file and the database)."""
        from opslab.canary import history_file, readable, recover_abandoned, resolve_secrets

        def target_of(plan: Plan) -> TargetClient:
            secrets = resolve_secrets(
                plan, self.environment(), may_read=readable(self.settings.canary_plan_env)
            )
            return self.canary_target(plan.target, secrets, seed=plan.seed)

        def append(plan: Plan, record: RunRecord) -> None:
            from opslab.canary import HistoryRecord, append_history

            line = HistoryRecord.model_validate({**record.model_dump(), "experiment": plan.experiment})
            append_history(history_file(self.settings.data_dir), line)
            self.canary_index(plan.target.base_url, line)

        return recover_abandoned(
            self.leases,
            holder=owner_id("canary-recovery"),
            target_of=target_of,
            append=append,
            name=name,
            ttl_s=self.settings.canary_lease_s,
        )

    # -- lab runs: archived where every replica reads them ---------------------------------------------

    @property
    def artifacts(self) -> ArtifactStore:
        return open_store(self.settings.resolved_artifact_store)

    @property
    def lab_index(self) -> SqlLabRunIndex:
        from opslab.store import SqlLabRunIndex

        return SqlLabRunIndex(self.engine)

    def index_lab_run(self, run_dir: Path) -> None:
        """Archive a finished run's files and index it, so it outlives its project folder."""
        from opslab.lab import archive_run

        self.lab_index.put(archive_run(run_dir, self.artifacts))

    def trial_queue(self) -> TrialQueue:
        """The tasks `opslab worker` processes take (``--executor rq``); needs Redis and its workers."""
        if not isinstance(self.backend, RqBackend):
            raise InvalidInput.for_field(
                "executor", "rq needs OPSLAB_REDIS_URL: the Redis your `opslab worker` processes listen on"
            )
        return TaskQueue(self.jobs, ready=self.backend.tasks_ready)

    def worker_runner(self) -> tuple[JobRunner, Reaper]:
        """For `opslab worker`: a runner and reaper that resubmit through this runtime's backend."""
        lease_s = self.settings.job_lease_s
        resubmit = _resubmit(self.job_store, self.routing)
        runner = JobRunner(
            store=self.job_store,
            bus=self.bus,
            works=self.works,
            owner=owner_id("worker"),
            lease_s=lease_s,
            resubmit=resubmit,
        )
        reaper = Reaper(store=self.job_store, bus=self.bus, lease_s=lease_s, resubmit=resubmit)
        reaper.ensure = self.routing.ensure_queued
        return runner, reaper

    @property
    def incidents(self) -> SqlIncidentStore:
        from opslab.store import SqlIncidentStore

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
        from opslab.responder import (
            CanaryHolds,
            HttpActionExecutor,
            HttpTargetProbe,
            Responder,
            WebhookNotifier,
        )
        from opslab.store import SqlSharedKnowledge, open_checkpointer

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
            actions=FencedActions(HttpActionExecutor(actions, token), lambda: self.responder_fence),
            store=self.incidents,
            knowledge=KnowledgeBase.load(knowledge_dir, extra=extra, retrieval=s.knowledge_retrieval),
            knowledge_dir=knowledge_dir,
            extra_knowledge=extra,
            checkpointer=checkpointer,
            config=responder_config(s),
            chat=self.chat_model(),
            record_run=record_run,
            on_progress=notify,
            shared_knowledge=SqlSharedKnowledge(self.engine),
            experiments=CanaryHolds(self.leases, target),
        )
        if s.responder_kill_switch:
            responder.halt(reason="started with OPSLAB_RESPONDER_KILL_SWITCH=true")
        return responder

    def autoops(self) -> AutoOps:
        """The AutoOps controller of this process: the simulated CI runner, the optimizer with its state in
        the database, the knowledge base, the build log; its series on the service's registry."""
        with self._autoops_lock:
            if self._autoops is None:
                from opslab.autoops import AutoOps, BuildMetrics, BuildSimulator, make_optimizer, state_name
                from opslab.knowledge import KnowledgeBase
                from opslab.store import SqlBanditStore, SqlBuildLog

                s = self.settings
                self._autoops = AutoOps(
                    runner=BuildSimulator(seed=s.autoops_seed),
                    optimizer=make_optimizer(
                        s.autoops_optimizer,
                        store=SqlBanditStore(self.engine, name=state_name(s.autoops_optimizer)),
                        seed=s.autoops_seed,
                    ),
                    knowledge=KnowledgeBase.load(s.resolved_knowledge_dir, retrieval=s.knowledge_retrieval),
                    builds=SqlBuildLog(self.engine),
                    observer=BuildMetrics(registry=self.metrics_registry),
                    chat=self.chat_model(),
                )
            return self._autoops

    def start_ingest_sidecar(self) -> None:
        """The service's helper for large OTLP exports (``store.traces``), where the settings and the
        machine allow one: forked now, so call it before this process starts threads (the service's
        start). It plans with this runtime's price table and redactor; ``close`` ends it."""
        if self.settings.otlp_sidecar and (os.cpu_count() or 1) > 1:
            telemetry = self.telemetry
            self.runs.start_sidecar(
                functools.partial(plan_share, prices=telemetry.prices, redactor=telemetry.redactor)
            )

    def close(self) -> None:
        self._closing.close()
        self.runs.close_sidecar()
        self.engine.dispose()


class FencedActions:
    """The responder's actions, executed only while this process holds the responder's lease (when it runs
    under one): a replica whose lease lapsed — paused, partitioned — acts no more, whatever it believes."""

    def __init__(self, inner: ActionExecutor, fence: Callable[[], Callable[[], None] | None]) -> None:
        self.inner, self.fence = inner, fence

    def catalog(self) -> list[ActionSpec]:
        return self.inner.catalog()

    def execute(self, name: str, params: dict[str, JsonValue], *, key: str | None = None) -> ActionResult:
        from opslab.responder import ActionResult

        check = self.fence()
        if check is not None:
            try:
                check()
            except LeaseLost as exc:
                return ActionResult(action=name, params=params, status="error", detail=f"not executed: {exc}")
        return self.inner.execute(name, params, key=key)

    def recorded(self, key: str) -> ActionResult | None:
        return self.inner.recorded(key)

    def verify(self) -> dict[str, JsonValue]:
        return self.inner.verify()

    def liveness(self) -> Liveness | None:
        return self.inner.liveness()


def responder_command_work(rt: Runtime) -> AnyWork:
    """What people ask of the responder, done by the replica holding its lease (``responder.commands``)."""
    from opslab.responder import command_work

    return command_work(rt.responder)


def _resubmit(store: SqlJobStore, backend: Backend) -> Callable[[Job, bool], None]:
    """Hand a job back to the backend (ahead of new work when asked) and record its new queue message."""

    def resubmit(job: Job, front: bool) -> None:
        ref = backend.submit(job, front)
        if ref is not None:
            store.set_queue_ref(job.id, ref)

    return resubmit


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
        approval_risk=None if s.responder_approval_risk == "none" else s.responder_approval_risk,
        max_actions=s.responder_max_actions,
        cooldown_s=s.responder_cooldown_s,
        confirm_s=s.responder_confirm_s,
        settle_polls=max(3, math.ceil(15.0 / poll)),  # a change settles after ~15 s of healthy polls
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
