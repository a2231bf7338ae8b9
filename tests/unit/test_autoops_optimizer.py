"""The Thompson optimizer: it learns the best action per context, persists through its store, takes
priors, and rejects unknown actions."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from opslab.autoops import (
    ACTIONS,
    BuildConfig,
    BuildContext,
    BuildSimulator,
    InMemoryBanditStore,
    ThompsonOptimizer,
)
from opslab.errors import InvalidInput

RENOVATE = BuildContext(repo_size_mb=800, dependency_churn=0.7, flaky_share=0.01)
MONOREPO = BuildContext(repo_size_mb=25_000, dependency_churn=0.05, flaky_share=0.04)


def _best_action(sim: BuildSimulator, context: BuildContext) -> int:
    return int(np.argmax([sim.success_probability(a.config, context) for a in ACTIONS]))


def _train(optimizer: ThompsonOptimizer, sim: BuildSimulator, context: BuildContext, n: int) -> None:
    for _ in range(n):
        choice = optimizer.choose(context)
        result = sim.run(choice.config, context)
        optimizer.update(context, choice.action_id, result.status == "success")


def test_it_learns_the_best_action_of_each_context() -> None:
    sim = BuildSimulator(seed=4)
    optimizer = ThompsonOptimizer(store=InMemoryBanditStore(), seed=4)
    for _ in range(300):
        for context in (RENOVATE, MONOREPO):
            _train(optimizer, sim, context, 1)
    # The monorepo has one clearly best action; the renovate service several close ones (within 3 points).
    best = optimizer.best(MONOREPO)
    assert best.action_id == _best_action(sim, MONOREPO)
    assert best.confidence > 0.5
    top = sim.success_probability(ACTIONS[_best_action(sim, RENOVATE)].config, RENOVATE)
    assert sim.success_probability(optimizer.best(RENOVATE).config, RENOVATE) > top - 0.03
    assert _best_action(sim, RENOVATE) != _best_action(sim, MONOREPO)
    picks = [optimizer.choose(MONOREPO).action_id for _ in range(100)]
    assert picks.count(_best_action(sim, MONOREPO)) >= 70


def test_a_restart_over_the_same_store_continues_where_it_was() -> None:
    store = InMemoryBanditStore()
    first = ThompsonOptimizer(store=store, seed=1)
    _train(first, BuildSimulator(seed=1), MONOREPO, 80)
    assert store.saves == 80
    second = ThompsonOptimizer(store=store, seed=1)
    assert second.updates == 80
    assert second.state() == first.state()
    assert second.success_rates(MONOREPO) == first.success_rates(MONOREPO)
    assert second.best(MONOREPO).action_id == first.best(MONOREPO).action_id


def test_the_state_is_json_and_survives_a_catalog_change() -> None:
    import json

    store = InMemoryBanditStore()
    optimizer = ThompsonOptimizer(store=store, seed=0)
    optimizer.update(MONOREPO, 3, True)
    state = json.loads(json.dumps(store.state))
    smaller = ThompsonOptimizer(ACTIONS[2:], store=InMemoryBanditStore(state), seed=0)
    assert smaller.success_rates(MONOREPO)[3] > smaller.success_rates(MONOREPO)[4]


def test_a_sparse_bucket_borrows_from_its_coarser_buckets() -> None:
    optimizer = ThompsonOptimizer(store=InMemoryBanditStore(), seed=0)
    for _ in range(30):
        optimizer.update(MONOREPO, 9, True)
        optimizer.update(MONOREPO, 0, False)
    after_oom = MONOREPO.model_copy(update={"last_error_class": "oom"})
    rates = optimizer.success_rates(after_oom)
    assert rates[9] > 0.8 > 0.2 > rates[0]


def test_a_prior_shifts_the_choice_and_builds_outweigh_it() -> None:
    optimizer = ThompsonOptimizer(store=InMemoryBanditStore(), seed=0)
    optimizer.prior(RENOVATE, 4, strength=5)
    assert optimizer.best(RENOVATE).action_id == 4
    for _ in range(20):
        optimizer.update(RENOVATE, 4, False)
    assert optimizer.best(RENOVATE).action_id != 4


def test_unknown_action_ids_are_invalid_input_naming_the_field() -> None:
    optimizer = ThompsonOptimizer(store=InMemoryBanditStore(), seed=0)
    with pytest.raises(InvalidInput) as caught:
        optimizer.update(RENOVATE, 99, True)
    assert caught.value.details["errors"][0]["field"] == "action_id"
    with pytest.raises(InvalidInput, match="action_id"):
        optimizer.prior(RENOVATE, -1, strength=1)
    with pytest.raises(InvalidInput, match="strength"):
        optimizer.prior(RENOVATE, 1, strength=0)


def test_confidence_is_a_probability_and_choices_are_seeded() -> None:
    a = ThompsonOptimizer(store=InMemoryBanditStore(), seed=5)
    b = ThompsonOptimizer(store=InMemoryBanditStore(), seed=5)
    for _ in range(20):
        ca, cb = a.choose(RENOVATE), b.choose(RENOVATE)
        assert ca == cb
        assert 0.0 <= ca.confidence <= 1.0
        assert ca.config == ACTIONS[ca.action_id].config
    fresh = a.best(BuildContext(repo_size_mb=90_000))
    assert 0.0 <= fresh.confidence <= 0.5  # no data: ten arms, none clearly best


def test_posteriors_kept_between_decisions_match_ones_computed_afresh() -> None:
    store = InMemoryBanditStore()
    live = ThompsonOptimizer(store=store, seed=2)
    sim = BuildSimulator(seed=2)
    after_oom = MONOREPO.model_copy(update={"last_error_class": "oom"})
    for n in range(120):  # three buckets sharing their coarser ones, decisions between the updates
        context = (MONOREPO, after_oom, RENOVATE)[n % 3]
        choice = live.choose(context)
        live.update(context, choice.action_id, sim.run(choice.config, context).status == "success")
        if n % 10 == 0:
            live.prior(after_oom, 9, strength=1)
    fresh = ThompsonOptimizer(store=InMemoryBanditStore(store.state), seed=2)
    for context in (MONOREPO, after_oom, RENOVATE, BuildContext()):
        assert live.success_rates(context) == pytest.approx(fresh.success_rates(context), abs=1e-12)


def test_a_boolean_is_not_a_number_of_retries() -> None:
    for field in ("retries", "memory_gb", "parallelism"):
        with pytest.raises(ValidationError, match="not a boolean"):
            BuildConfig.model_validate({field: True})
    assert BuildConfig.model_validate({"retries": 1}).retries == 1
