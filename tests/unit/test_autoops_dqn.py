"""The seed's optimizer, selectable: Stable-Baselines3's DQN stepped build by build behind the bandit's
interface — it learns, persists through its store and continues after a restart, takes priors, and refuses
what the bandit refuses. Needs the `dqn` extra (skipped without it; the install hint is tested in
tests/e2e/test_autoops_cli.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from opslab.autoops import (
    ACTIONS,
    BuildContext,
    BuildSimulator,
    DqnOptimizer,
    InMemoryBanditStore,
    dqn_available,
    make_optimizer,
    state_name,
)
from opslab.errors import InvalidInput

if not dqn_available():
    if os.environ.get("OPSLAB_TEST_DQN") == "1":
        pytest.fail("OPSLAB_TEST_DQN=1 but the `dqn` extra is not installed", pytrace=False)
    pytest.skip("needs the dqn extra (stable-baselines3): make test-dqn", allow_module_level=True)

MONOREPO = BuildContext(repo_size_mb=25_000, dependency_churn=0.05, flaky_share=0.04)
RENOVATE = BuildContext(repo_size_mb=800, dependency_churn=0.7, flaky_share=0.01)


def train(optimizer: DqnOptimizer, sim: BuildSimulator, context: BuildContext, n: int) -> None:
    for _ in range(n):
        choice = optimizer.choose(context)
        optimizer.update(context, choice.action_id, sim.run(choice.config, context).status == "success")


def test_it_learns_a_configuration_close_to_the_best() -> None:
    sim = BuildSimulator(seed=3)
    optimizer = DqnOptimizer(store=InMemoryBanditStore(), seed=3, exploration_builds=150, autosave=False)
    train(optimizer, sim, MONOREPO, 400)
    rates = [sim.success_probability(a.config, MONOREPO) for a in ACTIONS]
    chosen = optimizer.best(MONOREPO)
    assert rates[chosen.action_id] >= max(rates) - 0.05, (chosen.action_id, np.round(rates, 2))
    assert chosen.confidence == pytest.approx(0.95 + 0.05 / len(ACTIONS))  # ε has reached its floor
    assert 0.0 <= optimizer.success_rates(MONOREPO)[chosen.action_id] <= 1.0


def test_a_restart_over_the_same_store_continues_where_it_was() -> None:
    store = InMemoryBanditStore()
    first = DqnOptimizer(store=store, seed=1)
    train(first, BuildSimulator(seed=1), MONOREPO, 70)
    assert store.saves == 70 and json.loads(json.dumps(store.state)) == store.state  # JSON, saved every build
    second = DqnOptimizer(store=store, seed=1)
    assert second.updates == 70 and second.epsilon == first.epsilon
    assert second.success_rates(MONOREPO) == first.success_rates(MONOREPO)
    assert second.best(MONOREPO) == first.best(MONOREPO)
    train(second, BuildSimulator(seed=2), MONOREPO, 5)  # its replay buffer came back: it trains at once
    assert second.updates == 75 and second.success_rates(MONOREPO) != first.success_rates(MONOREPO)


def test_a_prior_shifts_the_choice() -> None:
    optimizer = DqnOptimizer(store=InMemoryBanditStore(), seed=0, learning_starts=32)
    before = optimizer.success_rates(RENOVATE)[4]
    optimizer.prior(RENOVATE, 4, strength=40)
    for _ in range(40):  # builds elsewhere train the network on the replayed prior too
        optimizer.update(MONOREPO, 9, True)
    assert optimizer.success_rates(RENOVATE)[4] > before + 0.2


def test_bad_calls_and_a_foreign_state_are_refused_by_name() -> None:
    optimizer = DqnOptimizer(store=InMemoryBanditStore(), seed=0)
    with pytest.raises(InvalidInput, match="action_id"):
        optimizer.update(RENOVATE, 99, True)
    with pytest.raises(InvalidInput, match="strength"):
        optimizer.prior(RENOVATE, 1, strength=0)
    state = {**optimizer.state(), "action_ids": [0, 1, 2]}
    with pytest.raises(InvalidInput, match="action_ids"):
        DqnOptimizer(store=InMemoryBanditStore(state), seed=0)


def test_each_kind_keeps_its_state_under_its_own_name() -> None:
    assert state_name("bandit") == "default" and state_name("dqn") == "dqn"
    assert isinstance(make_optimizer("dqn", store=InMemoryBanditStore(), seed=0), DqnOptimizer)
