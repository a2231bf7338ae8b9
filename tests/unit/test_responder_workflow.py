"""The workflow end to end over a fake world: detect, diagnose, act, verify, learn or escalate."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from opslab.errors import Conflict
from opslab.responder import NODES, incident_run
from opslab.telemetry import AgentRunIn
from tests.unit.responder_fakes import CATALOG, FakeClock, FakeExecutor, World, make_responder, warm_up


def nodes(incident) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.node for s in incident.steps]


def open_incident(world: World, responder, fault: str):  # type: ignore[no-untyped-def]
    warm_up(responder)
    world.inject(fault)
    responder.clock.sleep(30)
    assert responder.poll_once() is None  # one bad poll is not an incident
    incident = None
    for _ in range(2):  # two agreeing polls; slowness alone, three
        responder.clock.sleep(30)
        incident = incident or responder.poll_once()
    assert incident is not None
    return incident


@pytest.mark.parametrize(
    ("fault", "action"),
    [
        ("db_pool", "recycle-pool"),
        ("bad_deploy", "rollback-deploy"),
        ("latency_flag", "disable-flag"),
        ("dependency_outage", "restart-dependency"),
    ],
)
def test_a_fault_is_detected_diagnosed_fixed_and_verified(fault: str, action: str) -> None:
    world = World(FakeClock())
    runs: list[object] = []
    responder, executor, store = make_responder(world, checkpointer=InMemorySaver())
    responder.record_run = runs.append
    incident = open_incident(world, responder, fault)
    assert incident.status == "resolved", incident.recommendation
    assert [a.action for a in incident.actions] == [action]
    assert executor.calls[0][2] is not None  # an idempotency key went with it
    assert nodes(incident) == list(NODES)
    assert world.healthy()
    decisions = [r.decision for r in store.audit()]
    assert decisions == ["opened", "diagnosed", "planned", "executed", "verified", "resolved"]
    run = runs[0]
    assert isinstance(run, AgentRunIn) and run.status == "success" and run.agent_name == "opslab-responder"
    assert {c.tool_name for c in run.tool_calls} >= {"probe_target", "knowledge_search", f"action:{action}"}


def test_a_fault_that_returns_gets_a_different_action_then_escalates() -> None:
    world = World(FakeClock())
    responder, executor, store = make_responder(world, checkpointer=InMemorySaver(), auto_approve=True)
    incident = open_incident(world, responder, "db_pool_persistent")
    assert incident.status == "escalated"
    assert [a.action for a in incident.actions] == ["recycle-pool", "remediate-db-pool-exhaustion"]
    assert nodes(incident)[5:] == [
        "plan",
        "execute",
        "verify",
        "plan",
        "execute",
        "verify",
        "plan",
        "escalate",
    ]
    assert "nothing left" in incident.recommendation
    run = incident_run(incident)
    assert run.status == "failure" and run.error_type == "Escalated"


def test_high_risk_pauses_for_approval_and_resumes() -> None:
    world = World(FakeClock())
    responder, executor, store = make_responder(world, checkpointer=InMemorySaver(), approval_risk="high")
    incident = open_incident(world, responder, "memory_leak")
    assert incident.status == "awaiting_approval" and incident.pending_action is not None
    assert incident.pending_action.name == "restart-target" and executor.calls == []
    assert responder.status().awaiting_approval == [incident.id]
    # while paused, polling does not open a second incident
    responder.clock.sleep(30)
    assert responder.poll_once() is None and responder.poll_once() is None
    done = responder.approve(incident.id, approver="alice")
    assert done.status == "resolved" and [c[0] for c in executor.calls] == ["restart-target"]
    assert any(r.decision == "approved" and "alice" in r.detail for r in store.audit())
    with pytest.raises(Conflict):
        responder.approve(incident.id, approver="alice")


def test_a_rejected_action_escalates_without_acting() -> None:
    world = World(FakeClock())
    responder, executor, _ = make_responder(world, checkpointer=InMemorySaver(), approval_risk="high")
    incident = open_incident(world, responder, "memory_leak")
    done = responder.reject(incident.id, approver="bob")
    assert done.status == "escalated" and executor.calls == [] and "rejected by bob" in done.recommendation


def test_dry_run_plans_but_never_executes() -> None:
    world = World(FakeClock())
    responder, executor, store = make_responder(world, checkpointer=InMemorySaver(), dry_run=True)
    incident = open_incident(world, responder, "bad_deploy")
    assert incident.status == "escalated" and executor.calls == []
    assert "dry run: would run rollback-deploy()" in incident.recommendation
    assert responder.status().dry_run


def test_the_kill_switch_stops_every_action_and_its_release_resumes_the_incident() -> None:
    world = World(FakeClock())
    responder, executor, store = make_responder(world, checkpointer=InMemorySaver())
    responder.halt(reason="maintenance")
    incident = open_incident(world, responder, "db_pool")
    assert executor.calls == [] and incident.status == "open" and "kill switch" in incident.recommendation
    assert incident.held is not None and incident.held.reason == "kill_switch"
    assert responder.status().state == "halted"
    for _ in range(3):  # while it stays on, the fault goes on and nothing acts, nothing new opens
        responder.clock.sleep(30)
        assert responder.poll_once() is None
    assert executor.calls == [] and [i.id for i in store.list()] == [incident.id]
    responder.unhalt()
    assert responder.status().state == "watching"
    responder.clock.sleep(30)
    resumed = responder.poll_once()  # the next poll: the hold is over and the fault still there
    assert resumed is not None and resumed.id == incident.id and resumed.status == "resolved"
    assert executor.calls and resumed.held is None and [i.id for i in store.list()] == [incident.id]


def test_trigger_responds_before_confirmation_and_not_when_healthy() -> None:
    world = World(FakeClock())
    responder, executor, _ = make_responder(world, checkpointer=InMemorySaver())
    warm_up(responder)
    assert responder.trigger() is None
    world.inject("latency_flag")
    incident = responder.trigger()
    assert incident is not None and incident.status == "resolved"


def test_the_graph_itself_loops_monitor_until_confirmed() -> None:
    world = World(FakeClock())
    responder, executor, _ = make_responder(world, checkpointer=InMemorySaver())
    warm_up(responder)
    world.inject("bad_deploy")
    config = {"configurable": {"thread_id": "inc-graph"}}
    responder.graph.invoke({"incident_id": "inc-graph"}, config)  # type: ignore[arg-type]
    incident = responder.incident("inc-graph")
    assert incident.status == "resolved" and executor.calls[0][0] == "rollback-deploy"
    # healthy world: the graph ends after one monitor + detect
    out = responder.graph.invoke({"incident_id": "inc-quiet"}, {"configurable": {"thread_id": "inc-quiet"}})
    assert out["polls"] == 1 and not out.get("incident")


def test_learning_only_after_a_verified_recovery_and_retrieved_next_time(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    world = World(FakeClock())
    responder, _, _ = make_responder(
        world, checkpointer=InMemorySaver(), knowledge_dir=folder, auto_approve=True
    )
    failed = open_incident(world, responder, "db_pool_persistent")
    assert failed.status == "escalated" and failed.learned_document is None and not list(folder.glob("*.md"))

    world = World(FakeClock())
    responder, _, _ = make_responder(world, checkpointer=InMemorySaver(), knowledge_dir=folder)
    first = open_incident(world, responder, "db_pool")
    assert first.status == "resolved" and first.learned_document
    written = folder / f"{first.learned_document}.md"
    text = written.read_text()
    assert "kind: incident" in text and "db_pool_exhaustion" in text and "recycle-pool" in text
    assert first.learned_document in responder.knowledge

    world.inject("db_pool")
    responder.clock.sleep(30)
    responder.poll_once()
    responder.clock.sleep(30)
    second = responder.poll_once()
    assert second is not None and second.diagnosis is not None
    assert first.learned_document in second.diagnosis.similar_incidents
    assert second.status == "resolved"


def test_watch_polls_until_stopped() -> None:
    world = World(FakeClock())
    responder, executor, _ = make_responder(world, checkpointer=InMemorySaver(), poll_interval_s=0.01)
    world.inject("dependency_outage")
    stop = threading.Event()
    thread = threading.Thread(target=responder.watch, args=(stop,))
    thread.start()
    for _ in range(500):
        if executor.calls:
            break
        threading.Event().wait(0.01)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and executor.calls[0][0] == "restart-dependency"


def test_an_action_that_leaves_the_target_worse_stops_the_plan_instead_of_repeating() -> None:
    world = World(FakeClock())
    executor = FakeExecutor(world, harmful=frozenset({"restart-target"}))
    responder, _, store = make_responder(world, checkpointer=InMemorySaver(), executor=executor)
    incident = open_incident(world, responder, "memory_leak")
    assert incident.status == "escalated"
    assert [c[0] for c in executor.calls] == ["restart-target"]  # once, not again
    assert "left the target worse" in incident.recommendation and "unreachable" in incident.recommendation


def test_one_fault_is_one_incident_until_it_is_over() -> None:
    world = World(FakeClock())
    no_restart = [a for a in CATALOG if a.name != "restart-dependency"]
    responder, executor, store = make_responder(
        world, checkpointer=InMemorySaver(), executor=FakeExecutor(world, catalog=no_restart)
    )
    first = open_incident(world, responder, "dependency_outage")
    assert first.status == "escalated" and executor.calls == []
    for _ in range(20):  # the fault goes on: no incident every few polls
        responder.clock.sleep(30)
        assert responder.poll_once() is None
    assert [i.id for i in store.list()] == [first.id]
    world.dependency_up = True  # fixed by a human
    for _ in range(3):
        responder.clock.sleep(30)
        responder.poll_once()
    assert "this fault is over" in store.get(first.id).steps[-1].message
    second = open_incident(world, responder, "dependency_outage")  # a new fault: a new incident
    assert second.id != first.id and len(store.list()) == 2
