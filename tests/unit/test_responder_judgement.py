"""The responder's judgement where a real service is busy or unlucky: a cooldown and the kill switch are
delays, not verdicts; an experiment in progress explains what it causes (never what it cannot); a flag
flip is not taken into the baseline on its first poll; a high-risk action on an unsure diagnosis waits
for the fault to outlive it; a step resumed after a failover reads back what its first run did."""

from __future__ import annotations

from dataclasses import dataclass

from langgraph.checkpoint.memory import InMemorySaver
from pydantic import JsonValue

from opslab.knowledge import KnowledgeBase
from opslab.responder import ActionResult, InMemoryIncidentStore, Observation, Responder
from opslab.responder.changes import same_target
from opslab.responder.detect import Detector
from tests.unit.responder_fakes import FakeClock, FakeExecutor, FakeProbe, World, fast_config, make_responder


def poll(responder: Responder, seconds: float = 30) -> object:
    responder.clock.sleep(seconds)
    return responder.poll_once()


def first_incident(responder: Responder, polls: int = 8) -> object:
    for _ in range(polls):
        found = poll(responder)
        if found is not None:
            return found
    return None


def warm(responder: Responder, polls: int = 8) -> None:
    for _ in range(polls):
        assert poll(responder) is None


class Restarts(FakeExecutor):
    """A restart brings a target whose process is gone back."""

    def execute(self, name: str, params: dict[str, JsonValue], *, key: str | None = None) -> ActionResult:
        if name == "restart-target" and (key is None or key not in self.by_key):
            self.world.down = False
        return super().execute(name, params, key=key)


def test_a_fault_during_the_cooldown_is_acted_on_when_the_cooldown_ends() -> None:
    world = World(FakeClock())
    executor = Restarts(world)
    responder, _, store = make_responder(
        world, checkpointer=InMemorySaver(), executor=executor, cooldown_s=150
    )
    warm(responder)
    world.down = True
    first = poll(responder) or poll(responder) or poll(responder)
    assert first is not None and first.status == "resolved"  # type: ignore[attr-defined]
    world.down = True  # killed again at once: the restart cools down
    second = poll(responder) or poll(responder) or poll(responder)
    assert second is not None and second.status == "open"  # type: ignore[attr-defined]
    assert second.held is not None and second.held.reason == "cooldown"  # type: ignore[attr-defined]
    assert len(executor.calls) == 1
    outcome = None
    for _ in range(8):  # polled every 30 s: the hold ends within the cooldown
        outcome = poll(responder)
        if outcome is not None:
            break
    assert outcome is not None and outcome.id == second.id and outcome.status == "resolved"  # type: ignore[attr-defined]
    assert [c[0] for c in executor.calls] == ["restart-target", "restart-target"] and not world.down
    assert all(i.status == "resolved" for i in store.list())


class Experiments:
    def __init__(self) -> None:
        self.now: list[str] = []

    def __call__(self) -> list[str]:
        return list(self.now)


def _with_experiments(world: World, **config: object) -> tuple[Responder, FakeExecutor, Experiments]:
    executor, found = FakeExecutor(world), Experiments()
    responder = Responder(
        probe=FakeProbe(world),
        actions=executor,
        store=InMemoryIncidentStore(),
        knowledge=KnowledgeBase.load(None),
        knowledge_dir=None,
        checkpointer=InMemorySaver(),
        config=fast_config(**config),
        clock=world.clock,
        experiments=found,
    )
    return responder, executor, found


def test_an_experiment_in_progress_explains_its_latency_and_the_regression_it_leaves_is_acted_on() -> None:
    world = World(FakeClock())
    responder, executor, experiments = _with_experiments(world)
    warm(responder)
    experiments.now = ["canary run-7 (held by canary:run-7)"]
    world.flags["new_ranking"] = True  # the canary's candidate flags: slower
    for _ in range(6):
        assert poll(responder) is None
    last = responder.status().last_assessment
    assert last is not None and not last.signals and "canary run-7" in last.explained[0]
    assert executor.calls == []
    experiments.now = []  # it ended and left the flag on: now it is the service's regression
    incident = None
    for _ in range(5):
        incident = incident or poll(responder)
    assert incident is not None and [c[0] for c in executor.calls] == ["disable-flag"]


def test_an_experiment_never_explains_a_hard_fault() -> None:
    world = World(FakeClock())
    responder, executor, experiments = _with_experiments(world)
    warm(responder)
    experiments.now = ["the target's own A/B experiment"]
    world.inject("db_pool")
    incident = poll(responder) or poll(responder) or poll(responder)
    assert incident is not None and incident.status == "resolved" and executor.calls  # type: ignore[attr-defined]


@dataclass
class LaggingFlag(World):
    """A flag flip shows in the latency only a poll later (the metrics window still holds older requests),
    on a host whose every core is busy."""

    lag: int = 0

    def observe(self) -> Observation:
        obs = super().observe()
        if self.flags.get("new_ranking"):
            self.lag += 1
            if self.lag <= 1 and obs.latency_p95_ms is not None:
                obs = obs.model_copy(update={"latency_p95_ms": obs.latency_p95_ms - 400.0})
        return obs.model_copy(update={"host_cpu_busy_pct": 99.0, "host_cpus": 2, "host_load1": 20.0})


def test_a_flag_flip_on_a_busy_host_is_not_taken_into_the_baseline_on_its_first_poll() -> None:
    world = LaggingFlag(FakeClock())
    responder, executor, _ = make_responder(world, checkpointer=InMemorySaver())
    warm(responder)
    world.flags["new_ranking"] = True
    incident = None
    for _ in range(5):
        incident = incident or poll(responder)
    assert incident is not None and [c[0] for c in executor.calls] == ["disable-flag"]
    assert responder.detector.baseline().flags == {"new_ranking": False}


def test_a_changed_flag_settles_into_the_baseline_after_healthy_polls() -> None:
    world = World(FakeClock())
    detector = Detector(fast_config(settle_polls=3))
    for _ in range(4):
        detector.assess(world.observe())
    world.flags["rollout"] = True  # a flag that changes nothing
    for n in range(3):
        assert detector.baseline().flags.get("rollout") is None, n
        detector.assess(world.observe())
    assert detector.baseline().flags["rollout"] is True


@dataclass
class SlowLeak(World):
    """Memory growing steadily, far under its limit: a trend, not a fact."""

    growing: bool = True

    def observe(self) -> Observation:
        if self.growing:
            self.memory_mb += 20.0
        return super().observe()


def test_a_high_risk_action_on_an_unsure_diagnosis_waits_for_the_fault_to_outlive_it() -> None:
    world = SlowLeak(FakeClock(), growing=False, memory_mb=40.0)
    responder, executor, _ = make_responder(
        world, checkpointer=InMemorySaver(), confirm_s=40, memory_growth_mb_per_min=20
    )
    warm(responder)
    world.growing = True
    held = first_incident(responder)
    assert held is not None and held.status == "open" and executor.calls == []  # type: ignore[attr-defined]
    assert held.held is not None and held.held.reason == "confirm"  # type: ignore[attr-defined]
    outcome = poll(responder) or poll(responder) or poll(responder)
    assert outcome is not None and outcome.status == "resolved"  # type: ignore[attr-defined]
    assert [c[0] for c in executor.calls] == ["restart-target"]


def test_a_burst_that_stops_before_the_confirmation_draws_no_action() -> None:
    world = SlowLeak(FakeClock(), growing=False, memory_mb=40.0)
    responder, executor, store = make_responder(
        world, checkpointer=InMemorySaver(), confirm_s=120, memory_growth_mb_per_min=20
    )
    warm(responder)
    world.growing = True
    held = first_incident(responder)
    assert held is not None and held.held is not None  # type: ignore[attr-defined]
    world.growing = False
    for _ in range(10):
        poll(responder)
    assert executor.calls == []
    closed = store.get(held.id)  # type: ignore[attr-defined]
    assert closed.status == "resolved" and closed.held is None and "no action" in closed.recommendation


def test_a_step_that_already_ran_is_read_back_on_resume() -> None:
    world = World(FakeClock())
    responder, executor, _ = make_responder(world, checkpointer=InMemorySaver())
    warm(responder)
    world.inject("db_pool")
    done = ActionResult(action="recycle-pool", params={}, status="success", detail="recycled")

    def recorded(key: str) -> ActionResult | None:  # the first run acted, then its replica died
        return done if ":1:recycle-pool" in key else executor.by_key.get(key)

    executor.recorded = recorded  # type: ignore[method-assign]
    incident = poll(responder) or poll(responder) or poll(responder)
    assert incident is not None
    assert executor.calls == [] or executor.calls[0][0] != "recycle-pool"
    actions = incident.actions  # type: ignore[attr-defined]
    assert actions and actions[0].action == "recycle-pool" and "it ran before" in actions[0].detail


def test_the_same_target_under_other_names() -> None:
    assert same_target("http://127.0.0.1:8100/", "http://localhost:8100")
    assert not same_target("http://127.0.0.1:8100", "http://127.0.0.1:8101")
    assert not same_target("http://10.0.0.1:80", "http://10.0.0.2")
    assert same_target("http://svc.internal", "http://SVC.internal:80")


def test_a_process_the_action_started_that_died_since_is_a_new_fault() -> None:
    from datetime import UTC, datetime

    from opslab.responder import Liveness
    from opslab.responder.acting import replaced_then_gone

    at = datetime(2026, 1, 1, tzinfo=UTC)
    stopped = Observation(
        timestamp=at, reachability="timeout", liveness=Liveness(supervised=True, pid=41, alive=True)
    )
    gone_new = Observation(
        timestamp=at, reachability="refused", liveness=Liveness(supervised=True, pid=97, alive=False)
    )
    gone_same = Observation(
        timestamp=at, reachability="refused", liveness=Liveness(supervised=True, pid=41, alive=False)
    )
    assert replaced_then_gone(stopped, [gone_new]) is not None
    assert replaced_then_gone(stopped, [gone_same]) is None  # the action did not replace it
    assert replaced_then_gone(stopped, [Observation(timestamp=at, reachability="refused")]) is None
