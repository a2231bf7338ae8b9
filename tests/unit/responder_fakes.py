"""A fake world for the responder's tests: a target whose symptoms follow the contract's shapes for
each fault, an action server whose actions change that world, and a clock whose sleep advances time.
They implement the responder's Protocols; nothing is patched."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import JsonValue

from opslab.knowledge import KnowledgeBase
from opslab.responder import (
    ActionResult,
    ActionSpec,
    Chat,
    Check,
    InMemoryIncidentStore,
    Liveness,
    LogLine,
    Observation,
    PoolStatus,
    Responder,
    ResponderConfig,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CATALOG = [
    ActionSpec(name="remediate-db-pool-exhaustion", risk="high"),
    ActionSpec(name="recycle-pool", risk="low"),
    ActionSpec(name="scale-pool", risk="medium"),
    ActionSpec(name="restart-target", risk="high"),
    ActionSpec(name="rollback-deploy", risk="medium"),
    ActionSpec(name="disable-flag", risk="low"),
    ActionSpec(name="restart-dependency", risk="medium"),
]


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.t = start
        self.slept = 0.0

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.t += timedelta(seconds=seconds)


@dataclass
class World:
    """The target's true state. ``leak_active``: the cause keeps breaking the pool after a recycle."""

    clock: FakeClock
    seed: int = 7
    version: str = "v1"
    previous_version: str = "v1"
    flags: dict[str, bool] = field(default_factory=lambda: {"new_ranking": False})
    pool_drained: bool = False
    leak_active: bool = False
    memory_mb: float = 80.0
    memory_leak: bool = False
    dependency_up: bool = True
    down: bool = False  # the target's process gone: nothing listens
    traffic: float = 1.0
    spike_p95: float = 0.0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # --- chaos (the responder never calls these) ---
    def inject(self, fault: str) -> None:
        if fault == "db_pool":
            self.pool_drained = True
        elif fault == "db_pool_persistent":
            self.pool_drained = self.leak_active = True
        elif fault == "bad_deploy":
            self.previous_version, self.version = self.version, "v2"
        elif fault == "latency_flag":
            self.flags["new_ranking"] = True
        elif fault == "memory_leak":
            self.memory_leak = True
            self.memory_mb = 396.0
        elif fault == "dependency_outage":
            self.dependency_up = False
        elif fault == "traffic_spike":
            self.traffic = 4.0
        else:
            raise ValueError(fault)

    def observe(self) -> Observation:
        r = self.rng
        if self.down:
            return Observation(
                timestamp=self.clock.now(),
                health_status="unreachable",
                reachability="refused",
                errors=["GET /api/v1/health: ConnectError: [Errno 111] Connection refused"],
            )
        if self.leak_active:
            self.pool_drained = True
        err = r.uniform(0.0, 1.0)
        p95 = r.uniform(28, 40) + (self.spike_p95 if self.traffic > 1 else 0)
        codes = {"200": 100}
        logs = [LogLine(ts=self.clock.now(), level="INFO", message="GET /api/v1/orders 200")]
        checks = {"database": Check(ok=True, detail="ok"), "dependency": Check(ok=True, detail="ok")}
        pool = PoolStatus(size=5, checked_out=1, utilization=0.2, pool_health="healthy")
        if self.pool_drained:
            err, p95 = 62.0 + r.uniform(-3, 3), 1250.0
            codes = {"200": 38, "503": 62}
            pool = PoolStatus(
                size=5, checked_out=5, utilization=1.0, pool_health="critical", wait_timeouts=31
            )
            checks["database"] = Check(ok=False, detail="pool exhausted: 5 of 5 checked out")
            logs.append(
                LogLine(
                    level="ERROR",
                    message="DB_ERROR: QueuePool limit of size 5 overflow 0 reached, "
                    "connection timed out, timeout 30.00",
                )
            )
        if self.version == "v2":
            err = 41.0 + r.uniform(-2, 2)
            codes = {"200": 59, "500": 41}
            logs.append(
                LogLine(
                    level="ERROR",
                    message="TypeError: unsupported operand type(s) for *: 'NoneType' and "
                    "'float' (release v2)",
                )
            )
        if self.flags.get("new_ranking"):
            p95 += 400.0
        if self.memory_leak:
            self.memory_mb = min(self.memory_mb + 2.0, 420.0)
        if self.memory_mb >= 400 * 0.95:
            err = 35.0
            codes = {"200": 65, "503": 35}
            logs.append(LogLine(level="ERROR", message="MemoryError: cannot allocate response buffer"))
        if not self.dependency_up:
            err, codes = 100.0, {"502": 100}
            checks["dependency"] = Check(ok=False, detail="ConnectError: [Errno 111] Connection refused")
            logs.append(
                LogLine(
                    level="ERROR",
                    message="DEPENDENCY_ERROR: pricing service unreachable: [Errno 111] Connection refused",
                )
            )
        checks["memory"] = Check(ok=self.memory_mb < 400, detail=f"rss {self.memory_mb:.0f} MB of 400 MB")
        unhealthy = any(not c.ok for c in checks.values())
        self.clock.sleep(0.0)
        return Observation(
            timestamp=self.clock.now(),
            health_status="degraded" if unhealthy else "healthy",
            version=self.version,
            checks=checks,
            request_rate=20.0 * self.traffic + r.uniform(-1, 1),
            error_rate=err,
            avg_response_time_ms=p95 * 0.6,
            latency_p50_ms=p95 * 0.5,
            latency_p95_ms=p95,
            latency_p99_ms=p95 * 1.2,
            status_codes=codes,
            memory_rss_mb=self.memory_mb,
            memory_limit_mb=400.0,
            pool=pool,
            flags=dict(self.flags),
            logs=logs,
        )

    def healthy(self) -> bool:
        return not (
            self.pool_drained
            or self.version == "v2"
            or self.flags.get("new_ranking")
            or self.memory_mb >= 380
            or not self.dependency_up
            or self.down
        )


class FakeProbe:
    def __init__(self, world: World) -> None:
        self.world = world
        self.calls = 0

    def observe(self) -> Observation:
        self.calls += 1
        return self.world.observe()


class FakeExecutor:
    """The action server over the fake world; ``key`` makes a repeated call act once."""

    def __init__(
        self, world: World, catalog: list[ActionSpec] | None = None, *, harmful: frozenset[str] = frozenset()
    ) -> None:
        self.world = world
        self._catalog = CATALOG if catalog is None else catalog
        self.harmful = harmful  # actions that leave the target down (a restart that cannot come back)
        self.calls: list[tuple[str, dict[str, JsonValue], str | None]] = []
        self.by_key: dict[str, ActionResult] = {}

    def catalog(self) -> list[ActionSpec]:
        return list(self._catalog)

    def execute(self, name: str, params: dict[str, JsonValue], *, key: str | None = None) -> ActionResult:
        if key is not None and key in self.by_key:
            return self.by_key[key]
        self.calls.append((name, params, key))
        w = self.world
        if name in ("recycle-pool", "remediate-db-pool-exhaustion", "restart-target"):
            w.pool_drained = False
        if name == "restart-target" or (
            name == "remediate-db-pool-exhaustion" and params.get("action") == "escalate_to_db_restart"
        ):
            w.memory_mb, w.memory_leak, w.pool_drained = 80.0, False, False
        if name == "rollback-deploy":
            w.version = w.previous_version
        if name == "disable-flag":
            w.flags[str(params.get("flag"))] = False
        if name == "restart-dependency":
            w.dependency_up = True
        if name in self.harmful:
            w.down = True
        result = ActionResult(action=name, params=params, status="success", detail="done")
        if key is not None:
            self.by_key[key] = result
        return result

    def recorded(self, key: str) -> ActionResult | None:
        return self.by_key.get(key)

    def liveness(self) -> Liveness | None:
        return None  # this fake world has no processes to report on

    def verify(self) -> dict[str, JsonValue]:
        if self.world.leak_active:
            self.world.pool_drained = True
        return {
            "is_healthy": self.world.healthy(),
            "status": "healthy" if self.world.healthy() else "degraded",
        }


def fast_config(**overrides: object) -> ResponderConfig:
    base: dict[str, object] = {
        "poll_interval_s": 30.0,
        "settle_s": 10.0,
        "verify_interval_s": 5.0,
        "cooldown_s": 0.0,
    }
    return ResponderConfig.model_validate({**base, **overrides})


def make_responder(
    world: World,
    *,
    checkpointer: object,
    knowledge_dir: Path | None = None,
    executor: FakeExecutor | None = None,
    chat: Chat | None = None,
    **config: object,
) -> tuple[Responder, FakeExecutor, InMemoryIncidentStore]:
    executor = executor or FakeExecutor(world)
    store = InMemoryIncidentStore()
    responder = Responder(
        probe=FakeProbe(world),
        actions=executor,
        store=store,
        knowledge=KnowledgeBase.load(knowledge_dir),
        knowledge_dir=knowledge_dir,
        checkpointer=checkpointer,  # type: ignore[arg-type]
        config=fast_config(**config),
        clock=world.clock,
        chat=chat,
    )
    return responder, executor, store


def warm_up(responder: Responder, polls: int = 6) -> None:
    for _ in range(polls):
        responder.clock.sleep(30)
        assert responder.poll_once() is None
