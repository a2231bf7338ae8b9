"""Detection: a robust baseline, N consecutive bad polls, request rate never a signal."""

from __future__ import annotations

import pytest

from opslab.responder import Detector, Observation, ResponderConfig
from tests.unit.responder_fakes import FakeClock, World


def healthy_run(world: World, detector: Detector, polls: int = 8) -> None:
    for _ in range(polls):
        world.clock.sleep(30)
        assert not detector.assess(world.observe()).anomalous


def test_a_healthy_service_with_noise_raises_nothing() -> None:
    world = World(FakeClock())
    detector = Detector(ResponderConfig())
    healthy_run(world, detector, polls=40)
    base = detector.baseline()
    assert base.samples == 20 and base.latency_p95_ms is not None and base.latency_p95_ms.median < 45


def test_one_noisy_poll_is_not_an_incident() -> None:
    world = World(FakeClock())
    detector = Detector(ResponderConfig())
    healthy_run(world, detector)
    spiky = world.observe().model_copy(update={"latency_p95_ms": 900.0, "error_rate": 15.0})
    first = detector.assess(spiky)
    assert first.anomalous and not first.is_incident
    world.clock.sleep(30)
    assert not detector.assess(world.observe()).anomalous
    assert detector.consecutive == 0
    # the outlier never entered the baseline
    assert detector.baseline().latency_p95_ms.median < 45  # type: ignore[union-attr]


@pytest.mark.parametrize("consecutive", [1, 2, 3])
def test_an_incident_needs_n_consecutive_bad_polls(consecutive: int) -> None:
    world = World(FakeClock())
    detector = Detector(ResponderConfig(consecutive=consecutive))
    healthy_run(world, detector)
    world.inject("db_pool")
    verdicts = []
    for _ in range(consecutive):
        world.clock.sleep(30)
        verdicts.append(detector.assess(world.observe()).is_incident)
    assert verdicts == [False] * (consecutive - 1) + [True]


def test_a_traffic_spike_with_healthy_answers_is_not_an_incident() -> None:
    world = World(FakeClock(), spike_p95=15.0)
    detector = Detector(ResponderConfig())
    healthy_run(world, detector)
    world.inject("traffic_spike")
    for _ in range(10):
        world.clock.sleep(30)
        obs = world.observe()
        assert obs.request_rate > 70
        assert not detector.assess(obs).anomalous


@pytest.mark.parametrize(
    ("fault", "signal"),
    [
        ("db_pool", "pool"),
        ("bad_deploy", "error_rate"),
        ("latency_flag", "latency"),
        ("memory_leak", "memory"),
        ("dependency_outage", "dependency"),
    ],
)
def test_each_fault_kind_is_detected(fault: str, signal: str) -> None:
    world = World(FakeClock())
    detector = Detector(ResponderConfig())
    healthy_run(world, detector)
    world.inject(fault)
    verdict = None
    for _ in range(3 if signal == "latency" else 2):  # slowness alone must hold one poll longer
        world.clock.sleep(30)
        verdict = detector.assess(world.observe())
    assert verdict is not None and verdict.is_incident and signal in verdict.signals


def test_unreachable_and_no_baseline() -> None:
    detector = Detector(ResponderConfig(consecutive=1))
    down = Observation(
        timestamp=FakeClock().now(),
        health_status="unreachable",
        reachability="refused",
        errors=["ConnectError"],
    )
    verdict = detector.assess(down)
    assert verdict.signals == ["unreachable"] and verdict.is_incident
    # without a baseline only absolute bounds apply: a slow but working service at 900 ms is not flagged
    fresh = Detector(ResponderConfig())
    assert not fresh.assess(Observation(timestamp=FakeClock().now(), latency_p95_ms=900.0)).anomalous
    assert "latency" in fresh.assess(Observation(timestamp=FakeClock().now(), latency_p95_ms=1500.0)).signals


def test_memory_growing_fast_is_a_signal_before_the_limit() -> None:
    clock = FakeClock()
    detector = Detector(ResponderConfig(memory_growth_mb_per_min=60))
    verdicts = []
    for i in range(5):
        clock.sleep(30)
        obs = Observation(timestamp=clock.now(), memory_rss_mb=80 + 60 * i, memory_limit_mb=400)
        verdicts.append(detector.assess(obs))
    assert "memory" in verdicts[-1].signals
    assert any("growing" in r for r in verdicts[-1].reasons)


def test_a_missing_reading_is_missing_and_a_restart_starts_a_new_memory_trend() -> None:
    """Polls of an outage carry no memory; the new process's first readings are not a leak."""
    clock = FakeClock()
    detector = Detector(ResponderConfig(consecutive=1))
    for mb in (210.0, 211.0, 210.5, 211.2):
        clock.sleep(1)
        assert not detector.assess(Observation(timestamp=clock.now(), pid=100, memory_rss_mb=mb)).anomalous
    for _ in range(5):  # the process is gone: no readings at all
        clock.sleep(1)
        gone = Observation(timestamp=clock.now(), health_status="unreachable", reachability="refused")
        assert gone.memory_rss_mb is None and detector.assess(gone).signals == ["unreachable"]
    for mb in (80.0, 81.0, 80.5, 81.5):  # restarted: a new pid, less memory
        clock.sleep(1)
        verdict = detector.assess(Observation(timestamp=clock.now(), pid=200, memory_rss_mb=mb))
        assert "memory" not in verdict.signals, verdict.reasons
    assert detector.baseline().memory_rss_mb is not None
