"""Diagnosis of each category from realistic observations, citing evidence that exists."""

from __future__ import annotations

import pytest

from opslab.knowledge import KnowledgeBase
from opslab.responder import (
    Detector,
    Diagnoser,
    Diagnosis,
    Observation,
    ResponderConfig,
    gather_evidence,
    investigate,
    symptoms_text,
)
from tests.unit.responder_fakes import FakeClock, World


def incident_observations(fault: str) -> tuple[Observation, list[Observation], Detector]:
    world = World(FakeClock())
    detector = Detector(ResponderConfig())
    history = []
    for _ in range(8):
        world.clock.sleep(30)
        obs = world.observe()
        detector.assess(obs)
        history.append(obs)
    world.inject(fault)
    for _ in range(3):
        world.clock.sleep(30)
        obs = world.observe()
        reasons = detector.assess(obs).reasons
        history.append(obs)
    assert reasons
    return obs, history, detector


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


@pytest.mark.parametrize(
    ("fault", "category", "runbook", "must_cite"),
    [
        ("db_pool", "db_pool_exhaustion", "db-pool-exhaustion", {"obs:pool.health", "obs:pool.utilization"}),
        ("bad_deploy", "bad_deploy", "bad-deploy", {"obs:version", "obs:status_codes.500"}),
        (
            "latency_flag",
            "latency_regression",
            "latency-regression-flag",
            {"obs:latency_p95_ms", "obs:flags.new_ranking"},
        ),
        ("memory_leak", "memory_leak", "memory-leak", {"obs:memory"}),
        (
            "dependency_outage",
            "dependency_outage",
            "dependency-outage",
            {"obs:checks.dependency", "obs:status_codes.502"},
        ),
    ],
)
def test_each_category_is_diagnosed_with_valid_citations(
    kb: KnowledgeBase, fault: str, category: str, runbook: str, must_cite: set[str]
) -> None:
    obs, history, detector = incident_observations(fault)
    baseline = detector.baseline()
    evidence = gather_evidence(obs, history, baseline)
    ids = {e.evidence_id for e in evidence}
    query = symptoms_text(evidence, detector.assess(obs).reasons)
    diagnosis, hits = Diagnoser(kb, ResponderConfig()).diagnose(obs, evidence, baseline, query)
    assert diagnosis.category == category
    assert diagnosis.runbook_id == runbook and runbook in kb
    assert must_cite <= set(diagnosis.evidence_ids)
    assert set(diagnosis.evidence_ids) <= ids
    assert diagnosis.confidence >= 0.6
    assert hits and hits[0].document.categories == [category]  # retrieval agrees with the rules
    if fault in ("db_pool", "bad_deploy", "memory_leak", "dependency_outage"):
        assert any(i.startswith("log:") for i in diagnosis.evidence_ids)
    found = investigate(obs, history, baseline, diagnosis)
    assert found.root_cause and not found.traffic_spike


def test_a_healthy_looking_observation_is_unknown(kb: KnowledgeBase) -> None:
    obs = Observation(timestamp=FakeClock().now(), health_status="unhealthy")
    evidence = gather_evidence(obs, [], Detector(ResponderConfig()).baseline())
    diagnosis, _ = Diagnoser(kb, ResponderConfig()).diagnose(
        obs, evidence, Detector(ResponderConfig()).baseline(), "unhealthy"
    )
    assert diagnosis.category == "unknown" and diagnosis.runbook_id is None


def test_investigation_names_a_traffic_spike_as_load(kb: KnowledgeBase) -> None:
    obs, history, detector = incident_observations("db_pool")
    spiky = obs.model_copy(update={"request_rate": 90.0})
    diagnosis = Diagnosis(category="db_pool_exhaustion", summary="pool", confidence=0.9)
    found = investigate(spiky, history, detector.baseline(), diagnosis)
    assert found.traffic_spike and "load" in found.root_cause
    assert any(e.evidence_id == "trend:traffic" for e in found.evidence)
