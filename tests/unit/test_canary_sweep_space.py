"""The sweep's flag space is refused, naming the field, before any load is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from opslab.canary import SWEEP_PENALTY as PENALTY
from opslab.canary import Experiment, MiniReport, Outcome, load_space, sweep_objective
from opslab.errors import InvalidInput

BASE = Experiment(
    qps=10,
    window_sec=1,
    rounds=1,
    flow_policy="static",
    target_p95=1200,
    routing_mode="default",
    topk_threshold=32,
)


def space_file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("params: {cache_size: {low: 1, high: 2}}", "params.cache_size", "not a flag"),
        ("params: {flow_policy: {choices: [aimd, turbo]}}", "params.flow_policy.choices[1]", "turbo"),
        ("params: {flow_policy: {low: 1, high: 2}}", "params.flow_policy", "choices"),
        ("params: {topk_threshold: {low: 64, high: 8}}", "params.topk_threshold", "low must be below high"),
        ("params: {topk_threshold: {low: 1, high: 5000}}", "params.topk_threshold", "5000"),
        ("params: {topk_threshold: {low: 1.5, high: 8}}", "params.topk_threshold", "integer"),
        ("params: {}", "params", ""),
        ("- just a list", "--space", "mapping"),
    ],
)
def test_bad_spaces_name_the_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_space(space_file(tmp_path, text), BASE)
    assert field in str(info.value.details) + info.value.message and words in info.value.message


def test_the_example_space_loads() -> None:
    space = load_space(Path(__file__).parents[2] / "examples" / "canary" / "space.yaml", BASE)
    assert set(space.params) == {"flow_policy", "routing_mode", "topk_threshold", "target_p95"}


def outcome(delta: float | None, error: float, early_stop: str | None = None) -> Outcome:
    report = MiniReport(delta_p95_pct=delta, delta_qps_pct=0.0, error_rate_pct=error)
    return Outcome(decision="FAIL", reason="", report=report, early_stop=early_stop)


@pytest.mark.parametrize(
    ("result", "score"),
    [
        (outcome(-12.0, 0.2), -12.0),
        (outcome(-30.0, 2.0), PENALTY + 2.0),
        (outcome(None, 0.0), PENALTY),
        (outcome(-30.0, 0.0, early_stop="x"), PENALTY),
        (Outcome(decision="FAIL", reason="not enough windows ran"), PENALTY),
    ],
)
def test_objective_penalises_what_must_never_win(result: Outcome, score: float) -> None:
    assert sweep_objective(result, 1.0) == score
