"""The responder on the project's database, SQLite and PostgreSQL: incidents and the audit trail in the
store, and LangGraph checkpoints through ``store.open_checkpointer`` that a second process (here: a fresh
checkpointer and a fresh responder) resumes from where the first stopped."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from opslab.errors import NotFound
from opslab.knowledge import KnowledgeBase
from opslab.responder import (
    AuditRecord,
    Incident,
    IncidentChanged,
    IncidentStore,
    InMemoryIncidentStore,
    Responder,
)
from opslab.responder.versions import VersionedIncidents
from opslab.store import SqlIncidentStore, SqlSharedKnowledge, open_checkpointer
from tests.unit.responder_fakes import T0, FakeClock, FakeExecutor, FakeProbe, World, fast_config, warm_up


def incident(n: int, status: str = "open") -> Incident:
    return Incident.model_validate(
        {"id": f"inc-{n}", "status": status, "opened_at": T0 + timedelta(minutes=n)}
    )


def test_incidents_are_saved_whole_listed_newest_first_and_filtered(engine: Engine) -> None:
    store = SqlIncidentStore(engine)
    for n in range(3):
        store.save(incident(n))
    resolved = store.get("inc-1").model_copy(
        update={"status": "resolved", "resolved_at": T0 + timedelta(hours=1)}
    )
    store.save(resolved)  # a save of the version read replaces it
    assert resolved.version == 2
    assert [i.id for i in store.list()] == ["inc-2", "inc-1", "inc-0"]
    assert [i.id for i in store.list(status="resolved")] == ["inc-1"]
    assert store.get("inc-1") == resolved
    with pytest.raises(NotFound):
        store.get("inc-9")


@pytest.mark.parametrize("make", ["sql", "memory"])
def test_a_save_over_another_writers_save_is_refused_never_last_writer_wins(
    engine: Engine, make: str
) -> None:
    store: IncidentStore = SqlIncidentStore(engine) if make == "sql" else InMemoryIncidentStore()
    store.save(incident(1))
    mine, theirs = store.get("inc-1"), store.get("inc-1")
    theirs.status = "resolved"
    store.save(theirs)
    mine.root_cause = "stale"
    with pytest.raises(IncidentChanged) as refused:
        store.save(mine)
    assert refused.value.details == {"id": "inc-1", "version": 1, "stored_version": 2}
    kept = store.get("inc-1")
    assert (kept.status, kept.root_cause, kept.version) == ("resolved", "", 2)
    with pytest.raises(IncidentChanged):  # a second "new" incident under a taken id
        store.save(incident(1))


def test_a_responder_whose_incident_another_took_over_leaves_it(engine: Engine) -> None:
    """Two responders on one store: the second takes an incident over; the first one's next save of it is
    refused and it carries on with nothing of its copy written."""
    first, second = VersionedIncidents(SqlIncidentStore(engine)), VersionedIncidents(SqlIncidentStore(engine))
    copy = incident(1)
    first.save(copy)
    taken = second.take_over(Incident.model_validate(copy.model_dump()))
    taken.status = "resolved"
    second.save(taken)
    copy.root_cause = "from the replica that lost it"
    with pytest.raises(IncidentChanged):
        first.save(copy)
    assert second.get("inc-1").root_cause == "" and second.get("inc-1").status == "resolved"


def test_the_audit_trail_keeps_the_newest_records_in_order(engine: Engine) -> None:
    store = SqlIncidentStore(engine)
    for n in range(5):
        store.append_audit(
            AuditRecord(
                at=T0 + timedelta(seconds=n), incident_id="inc-1" if n % 2 else "inc-2", decision=f"d{n}"
            )
        )
    assert [r.decision for r in store.audit()] == ["d0", "d1", "d2", "d3", "d4"]
    assert [r.decision for r in store.audit(limit=2)] == ["d3", "d4"]
    assert [r.decision for r in store.audit(incident_id="inc-1")] == ["d1", "d3"]


def responder(
    world: World,
    store: SqlIncidentStore,
    checkpointer: object,
    knowledge_dir: Path | None = None,
    **config: object,
) -> Responder:
    return Responder(
        probe=FakeProbe(world),
        actions=FakeExecutor(world),
        store=store,
        knowledge=KnowledgeBase.load(knowledge_dir),
        knowledge_dir=knowledge_dir,
        shared_knowledge=SqlSharedKnowledge(store.engine),
        checkpointer=checkpointer,  # type: ignore[arg-type]
        config=fast_config(**config),
        clock=world.clock,
    )


def test_a_paused_incident_survives_a_restart_and_resumes_on_the_database(
    db_url: str, engine: Engine
) -> None:
    """An incident waiting for approval is checkpointed in the database; a new responder process (new
    checkpointer, new store object) approves it and it completes without repeating a step."""
    world = World(FakeClock())
    store = SqlIncidentStore(engine)
    with open_checkpointer(db_url) as checkpointer:
        first = responder(world, store, checkpointer, approval_risk="high")  # the production profile
        warm_up(first)
        world.inject("memory_leak")  # restart-target is high risk: the incident pauses for a human
        world.clock.sleep(30)
        first.poll_once()
        world.clock.sleep(30)
        paused = first.poll_once()
        assert paused is not None and paused.status == "awaiting_approval"
    with open_checkpointer(db_url) as checkpointer:
        second = responder(world, store, checkpointer, approval_risk="high")
        assert second.resume_unfinished() == []  # a paused incident keeps waiting for its human
        done = second.approve(paused.id, approver="oncall")
    assert done.status == "resolved", done.recommendation
    assert [a.action for a in done.actions] == ["restart-target"]
    assert [s.node for s in done.steps].count("diagnose") == 1
    assert store.get(paused.id).status == "resolved"
    decisions = [r.decision for r in store.audit(incident_id=paused.id)]
    assert decisions.index("approval_required") < decisions.index("approved") < decisions.index("executed")


def test_what_one_replica_learned_the_next_lease_holder_knows(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Each replica has a knowledge folder of its own: a document learned on one is shared in the database
    and written into the other's folder when that one takes the responder over (and not twice)."""
    world = World(FakeClock())
    store = SqlIncidentStore(engine)
    here, there = tmp_path / "a" / "knowledge", tmp_path / "b" / "knowledge"
    with open_checkpointer(db_url) as checkpointer:
        first = responder(world, store, checkpointer, here)
        warm_up(first)
        world.inject("db_pool")
        world.clock.sleep(30)
        first.poll_once()
        world.clock.sleep(30)
        resolved = first.poll_once()
        assert resolved is not None and resolved.status == "resolved" and resolved.learned_document
        second = responder(world, store, checkpointer, there)
        assert resolved.learned_document not in second.knowledge
        assert second.refresh_knowledge() == [resolved.learned_document]
        assert resolved.learned_document in second.knowledge
        assert (there / f"{resolved.learned_document}.md").read_text() == (
            here / f"{resolved.learned_document}.md"
        ).read_text()
        assert second.refresh_knowledge() == []  # already there
