"""Which optimizer chooses the builds' configurations: the contextual Thompson bandit (the default) or the
seed's Stable-Baselines3 DQN (the ``dqn`` extra). Both answer the same calls and keep their state in the
same kind of store, each under its own name, so switching back and forth loses neither."""

from __future__ import annotations

from typing import Literal, Protocol, get_args

from opslab.autoops.bandit_state import BanditStateStore
from opslab.autoops.model import BuildContext
from opslab.autoops.optimizer import Choice, ThompsonOptimizer

OptimizerKind = Literal["bandit", "dqn"]
OPTIMIZER_KINDS: tuple[OptimizerKind, ...] = get_args(OptimizerKind)


class Optimizer(Protocol):
    updates: int

    def choose(self, context: BuildContext) -> Choice:
        """The configuration of the next build, exploring."""
        ...

    def best(self, context: BuildContext) -> Choice:
        """The configuration believed best, without exploring."""
        ...

    def update(self, context: BuildContext, action_id: int, success: bool) -> None: ...

    def prior(self, context: BuildContext, action_id: int, strength: float) -> None: ...

    def success_rates(self, context: BuildContext) -> dict[int, float]: ...

    def save(self) -> None: ...

    def reloaded(self) -> Optimizer:
        """A new optimizer over the same store, from the state saved there now (another process may have
        learned since), sampling as a new process does (the same seed): what ``opslab autoops status``
        answers, and ``/metrics`` with it."""
        ...


def state_name(kind: OptimizerKind) -> str:
    """The name an optimizer's state is stored under (the bandit's predates the choice: ``default``)."""
    return "default" if kind == "bandit" else kind


def make_optimizer(kind: OptimizerKind, *, store: BanditStateStore, seed: int | None) -> Optimizer:
    """The optimizer of this kind over ``store`` (give each kind the store named ``state_name(kind)``).
    ``dqn`` without its extra is ``Unavailable``, with the install hint."""
    if kind == "dqn":
        from opslab.autoops.dqn import DqnOptimizer

        return DqnOptimizer(store=store, seed=seed)
    return ThompsonOptimizer(store=store, seed=seed)
