"""Planning: runbook order, skip tried, catalog filter, approval by risk, max actions, cooldown."""

from __future__ import annotations

from datetime import timedelta

from opslab.knowledge import KnowledgeBase
from opslab.responder import Diagnosis, ResponderConfig, plan_next
from tests.unit.responder_fakes import CATALOG, T0

KB = KnowledgeBase.load()
POOL = Diagnosis(
    category="db_pool_exhaustion", summary="pool", confidence=0.9, runbook_id="db-pool-exhaustion"
)


def plan(**kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "diagnosis": POOL,
        "runbook": KB.get("db-pool-exhaustion"),
        "catalog": CATALOG,
        "tried": [],
        "executed": 0,
        "last_run": {},
        "now": T0,
        "config": ResponderConfig(),
    }
    args.update(kw)
    return plan_next(**args)  # type: ignore[arg-type]


def test_the_runbook_order_is_followed_and_tried_actions_are_skipped() -> None:
    first = plan()
    assert first.action is not None and first.action.name == "recycle-pool" and not first.needs_approval
    assert [a.name for a in first.remaining] == ["remediate-db-pool-exhaustion"]
    second = plan(tried=[first.action.key], executed=1)
    assert second.action is not None and second.action.name == "remediate-db-pool-exhaustion"
    assert second.action.params == {"action": "escalate_to_db_restart"}
    assert second.skipped == ["recycle-pool(): already tried"]
    third = plan(tried=[first.action.key, second.action.key], executed=2)
    assert third.action is None and "nothing left" in third.reason


def test_high_risk_needs_approval_unless_auto_approved() -> None:
    tried = ["recycle-pool()"]
    assert plan(tried=tried).needs_approval
    assert not plan(tried=tried, config=ResponderConfig(auto_approve=True)).needs_approval
    # the higher of runbook and catalog risk counts: the catalog calls recycle-pool high here
    risky = [a.model_copy(update={"risk": "high"}) if a.name == "recycle-pool" else a for a in CATALOG]
    decision = plan(catalog=risky)
    assert decision.action is not None and decision.action.risk == "high" and decision.needs_approval


def test_actions_the_server_does_not_offer_are_skipped() -> None:
    decision = plan(catalog=[a for a in CATALOG if a.name != "recycle-pool"])
    assert decision.action is not None and decision.action.name == "remediate-db-pool-exhaustion"
    assert "not offered" in decision.skipped[0]
    assert plan(catalog=[]).action is None


def test_max_actions_and_cooldown() -> None:
    assert plan(executed=3).action is None
    assert "max actions" in plan(executed=3).reason
    config = ResponderConfig(cooldown_s=60)
    cooling = plan(last_run={"recycle-pool": T0 - timedelta(seconds=20)}, config=config)
    assert cooling.action is not None and cooling.action.name == "remediate-db-pool-exhaustion"
    assert "cooling down" in cooling.skipped[0]
    cooled = plan(last_run={"recycle-pool": T0 - timedelta(seconds=61)}, config=config)
    assert cooled.action is not None and cooled.action.name == "recycle-pool"


def test_unknown_or_unsure_diagnoses_plan_nothing() -> None:
    unknown = Diagnosis(category="unknown", summary="?", confidence=0.2)
    assert plan(diagnosis=unknown, runbook=None).action is None
    unsure = POOL.model_copy(update={"confidence": 0.1})
    assert "confidence" in plan(diagnosis=unsure).reason


def test_what_worked_in_a_similar_incident_comes_first() -> None:
    past = KB.get("db-pool-exhaustion").model_copy(
        update={
            "id": "incident-x",
            "kind": "incident",
            "remediation": KB.get("db-pool-exhaustion").remediation[1:],
        }
    )
    decision = plan(similar=[past])
    assert decision.action is not None and decision.action.name == "remediate-db-pool-exhaustion"
    assert decision.action.runbook_id == "incident-x"
