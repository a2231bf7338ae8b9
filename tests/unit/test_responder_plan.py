"""Planning: runbook order, skip tried, catalog filter, approval by risk, max actions, cooldown."""

from __future__ import annotations

from datetime import timedelta

from opslab.knowledge import KnowledgeBase
from opslab.responder import Diagnosis, ResponderConfig, plan_next
from opslab.responder.plan import MORE_EVIDENCE
from tests.unit.responder_fakes import CATALOG, T0

KB = KnowledgeBase.load()
POOL = Diagnosis(
    category="db_pool_exhaustion", summary="pool", confidence=0.9, runbook_id="db-pool-exhaustion"
)


def runbook_with_risk(risk: str):  # type: ignore[no-untyped-def]
    """The pool runbook, claiming ``risk`` for every remediation."""
    doc = KB.get("db-pool-exhaustion")
    return doc.model_copy(
        update={"remediation": [r.model_copy(update={"risk": risk}) for r in doc.remediation]}
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


def test_nothing_waits_for_a_human_by_default_and_high_risk_waits_under_the_production_policy() -> None:
    tried = ["recycle-pool()"]
    assert not plan(tried=tried).needs_approval  # enabling the responder is the consent to act
    production = ResponderConfig(approval_risk="high")
    assert plan(tried=tried, config=production).needs_approval
    assert not plan(
        tried=tried, config=ResponderConfig(approval_risk="high", auto_approve=True)
    ).needs_approval
    # the catalog's risk counts, whatever the runbook says: the catalog calls recycle-pool high here
    risky = [a.model_copy(update={"risk": "high"}) if a.name == "recycle-pool" else a for a in CATALOG]
    decision = plan(catalog=risky, config=production)
    assert decision.action is not None and decision.action.risk == "high" and decision.needs_approval
    # and a runbook cannot raise it either: the catalog calls recycle-pool low, the runbook says high
    lenient = plan(runbook=runbook_with_risk("high"), config=production)
    assert lenient.action is not None and lenient.action.risk == "low" and not lenient.needs_approval


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


def test_a_learned_incident_keeps_the_catalogs_risk_and_the_approval_gate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After a resolved incident whose fix was the high-risk restart, the learned document says high, and
    the next incident's plan (which tries the learned action first) still waits under the policy."""
    from datetime import UTC, datetime

    from opslab.responder import ActionResult, Incident, learn_incident

    restart = ActionResult(
        action="remediate-db-pool-exhaustion",
        params={"action": "escalate_to_db_restart"},
        status="success",
        risk="high",
    )
    incident = Incident(
        id="inc-1",
        status="resolved",
        category="db_pool_exhaustion",
        diagnosis=POOL,
        opened_at=datetime.now(UTC),
        actions=[restart],
    )
    learned = learn_incident(incident, symptoms=["pool critical"], evidence=[], folder=tmp_path)
    assert [r.risk for r in learned.remediation] == ["high"]
    # Even a learned document that claims low (written by hand, or by an older version) lowers nothing.
    claims_low = learned.model_copy(
        update={"remediation": [r.model_copy(update={"risk": "low"}) for r in learned.remediation]}
    )
    decision = plan(similar=[claims_low], config=ResponderConfig(approval_risk="high"))
    assert decision.action is not None and decision.action.name == "remediate-db-pool-exhaustion"
    assert decision.action.risk == "high" and decision.needs_approval


def test_an_unsure_diagnosis_on_trends_only_is_made_again_once_before_a_human_is_called() -> None:
    unsure = POOL.model_copy(update={"confidence": 0.2})
    # Hard evidence (the target down, errors) and still unsure: a human must look, at once.
    assert plan(diagnosis=unsure).hold is None and "not acting" in plan(diagnosis=unsure).reason
    # Trends only (memory growing, latency creeping): a fault that goes on shows more; diagnose again.
    waiting = plan(diagnosis=unsure, hard=False)
    assert waiting.action is None and waiting.hold == "confirm" and waiting.held_action == MORE_EVIDENCE
    assert waiting.retry_at == T0 + timedelta(seconds=ResponderConfig().confirm_s)
    # Once: after the wait, still unsure is still not acting.
    again = plan(diagnosis=unsure, hard=False, waited=[MORE_EVIDENCE])
    assert again.hold is None and again.action is None and "not acting" in again.reason
    # Sure enough after the wait: it acts.
    assert plan(hard=False, waited=[MORE_EVIDENCE]).action is not None
