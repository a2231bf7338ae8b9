"""The simulated CI runner: seeded, and its failure causes answer to the build's configuration."""

from __future__ import annotations

import itertools

import numpy as np

from opslab.autoops import (
    ACTIONS,
    ERROR_TEXTS,
    BuildConfig,
    BuildContext,
    BuildSimulator,
    failure_probabilities,
)

LARGE = BuildContext(repo_size_mb=25_000, dependency_churn=0.05, flaky_share=0.02)


def _builds(seed: int, n: int = 60) -> list[tuple[BuildContext, object]]:
    sim = BuildSimulator(seed=seed)
    out = []
    for i in range(n):
        context = sim.sample_context()
        out.append((context, sim.run(ACTIONS[i % len(ACTIONS)].config, context)))
    return out


def test_same_seed_gives_identical_builds_and_another_seed_differs() -> None:
    assert _builds(7) == _builds(7)
    assert _builds(7) != _builds(8)


def test_results_carry_the_seed_error_texts_and_sensible_durations() -> None:
    for _, result in _builds(3, 200):
        assert result.duration > 0  # type: ignore[attr-defined]
        if result.status == "failed":  # type: ignore[attr-defined]
            assert result.error == ERROR_TEXTS[result.error_class]  # type: ignore[attr-defined]


def test_more_memory_lowers_oom_for_a_large_repo() -> None:
    low = failure_probabilities(BuildConfig(memory_gb=2), LARGE)["oom"]
    high = failure_probabilities(BuildConfig(memory_gb=8), LARGE)["oom"]
    cached = failure_probabilities(BuildConfig(memory_gb=2, cache=True), LARGE)["oom"]
    assert high < 0.05 < low
    assert cached < low


def test_pinning_the_image_and_retries_cut_their_causes() -> None:
    flaky = BuildContext(flaky_share=0.2)
    assert failure_probabilities(BuildConfig(pinned_image=True), flaky)["image_pull"] < 0.01
    assert failure_probabilities(BuildConfig(), flaky)["image_pull"] > 0.02
    assert (
        failure_probabilities(BuildConfig(retries=2), flaky)["flaky_test"]
        < failure_probabilities(BuildConfig(), flaky)["flaky_test"] / 5
    )


def test_a_stale_cache_hurts_dependency_resolution_only_at_high_churn() -> None:
    def dependency(cache: bool, churn: float) -> float:
        return failure_probabilities(BuildConfig(cache=cache), BuildContext(dependency_churn=churn))[
            "dependency_resolution"
        ]

    assert dependency(True, 0.05) < dependency(False, 0.05)
    assert dependency(True, 0.7) > dependency(False, 0.7)


def test_timeout_hits_large_repos_without_cache_and_parallelism() -> None:
    huge = BuildContext(repo_size_mb=40_000)
    slow = failure_probabilities(BuildConfig(parallelism=1), huge)["timeout"]
    fast = failure_probabilities(BuildConfig(parallelism=4, cache=True), huge)["timeout"]
    assert slow > 0.5 > 0.01 > fast


def test_success_probability_is_a_probability_and_matches_the_draws() -> None:
    sim = BuildSimulator(seed=1)
    for action in ACTIONS:
        for context in (LARGE, BuildContext(), BuildContext(dependency_churn=0.9, flaky_share=0.5)):
            assert 0.0 <= sim.success_probability(action.config, context) <= 1.0
    config, context = ACTIONS[0].config, BuildContext(flaky_share=0.1)
    rate = np.mean([sim.run(config, context).status == "success" for _ in range(2_000)])
    assert abs(rate - sim.success_probability(config, context)) < 0.04


def test_the_best_action_differs_across_contexts() -> None:
    sim = BuildSimulator(seed=0)
    best = set()
    for size, churn, flaky in itertools.product((300, 3_000, 25_000), (0.05, 0.4, 0.7), (0.01, 0.2)):
        context = BuildContext(repo_size_mb=size, dependency_churn=churn, flaky_share=flaky)
        best.add(int(np.argmax([sim.success_probability(a.config, context) for a in ACTIONS])))
    assert len(best) >= 3


def test_no_fixed_action_comes_within_five_points_of_the_per_context_best() -> None:
    for seed in (0, 1):
        sim = BuildSimulator(seed=seed)
        table = np.array(
            [
                [sim.success_probability(a.config, context) for a in ACTIONS]
                for context in (sim.sample_context() for _ in range(600))
            ]
        )
        assert table.max(axis=1).mean() - table.mean(axis=0).max() > 0.05


def test_contexts_remember_the_previous_error_of_their_pipeline() -> None:
    sim = BuildSimulator(seed=2, fleet_size=1)
    context = sim.sample_context()
    assert context.last_error_class is None
    result = sim.run(BuildConfig(), context)
    assert sim.sample_context().last_error_class == result.error_class
