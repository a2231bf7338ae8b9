"""The seed's optimizer, selectable (``--optimizer dqn``, ``OPSLAB_AUTOOPS_OPTIMIZER=dqn``):
Stable-Baselines3's DQN trained on-line, one build per step, behind the same interface as the bandit.

A build is a one-step episode (``done`` after every build, so the TD target is the reward: 1 on success):
``choose`` is ε-greedy over the Q-network, ε falling linearly from 1 to 0.05 over the first
``exploration_builds`` builds; ``update`` puts the build into the replay buffer and, once ``learning_starts``
builds are in, takes one gradient step on a batch of 32 — the settings ``bench/autoops.py`` measured.
The network sees the bandit's context buckets one-hot plus the numeric context (``observation``).
``confidence`` is the probability that the ε-greedy policy takes the action now (a DQN has no posterior).

State (saved after every build through the same store as the bandit's, under another name): the SB3
parameters (Q-network, target network, Adam) as a base64 torch archive read back with
``torch.load(weights_only=True)`` — tensors only, never arbitrary objects — and the replay buffer as a
base64 float32 matrix. Optional: ``pip install 'opslab[dqn]'`` (Stable-Baselines3, gymnasium, torch).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from opslab.autoops.bandit_state import BanditStateStore
from opslab.autoops.model import ACTIONS, ERROR_CLASSES, Action, BuildContext, features
from opslab.autoops.optimizer import MAX_PRIOR_STRENGTH, Choice
from opslab.errors import InvalidInput, Unavailable

HINT = "the DQN optimizer needs the extra: pip install 'opslab[dqn]' (Stable-Baselines3, gymnasium, torch)"
STATE_NAME = "dqn"
BATCH_SIZE = 32


def dqn_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("stable_baselines3", "gymnasium", "torch"))


def observation(context: BuildContext) -> np.ndarray:
    """The DQN's view of a build: the bandit's feature buckets one-hot, plus the numeric context."""
    repo, churn, flaky, last = features(context)
    one_hot = [
        repo == "repo:large",
        churn == "churn:high",
        flaky == "flaky:high",
        *(last == f"last:{c}" for c in ("none", *ERROR_CLASSES)),
    ]
    numeric = [
        np.log1p(context.repo_size_mb) / np.log1p(100_000),
        context.dependency_churn,
        context.flaky_share,
    ]
    return np.array([*map(float, one_hot), *numeric], dtype=np.float32)


class DqnState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    kind: Literal["dqn"] = "dqn"
    action_ids: list[int]
    updates: int = Field(0, ge=0)
    parameters: str = Field(description="base64 torch archive of the SB3 parameters (tensors only).")
    transitions: str = Field(description="base64 float32 rows: observation, action index, reward.")


class DqnOptimizer:
    def __init__(
        self,
        actions: Sequence[Action] = ACTIONS,
        *,
        store: BanditStateStore,
        seed: int | None = None,
        exploration_builds: int = 300,
        final_epsilon: float = 0.05,
        learning_starts: int = 50,
        buffer_size: int = 1_000,
        autosave: bool = True,
    ) -> None:
        try:
            import gymnasium as gym
            import torch
            from stable_baselines3 import DQN
            from stable_baselines3.common.logger import Logger
        except ImportError:
            raise Unavailable(HINT, details={"field": "optimizer"}) from None
        if not actions:
            raise InvalidInput.for_field("actions", "the catalog is empty")
        self.actions = tuple(actions)
        self._index = {a.action_id: i for i, a in enumerate(self.actions)}
        self._store, self._autosave = store, autosave
        self._seed, self._buffer_size = seed, buffer_size
        self._rng = np.random.default_rng(seed)
        self._torch = torch
        self._exploration, self._final = exploration_builds, final_epsilon
        self._starts = learning_starts
        self._lock = threading.Lock()
        size = len(observation(BuildContext()))
        spaces = _Spaces(gym, size, len(self.actions))
        self._model: Any = DQN(
            "MlpPolicy",
            spaces,
            learning_rate=1e-3,
            buffer_size=buffer_size,
            learning_starts=0,  # gated here: updates come one build at a time, not from learn()
            batch_size=BATCH_SIZE,
            gamma=0.0,
            policy_kwargs={"net_arch": [64, 64]},
            seed=seed,
            device="cpu",
        )
        self._model.set_logger(Logger(folder=None, output_formats=[]))
        self.updates = 0
        saved = store.load()
        if saved is not None:
            self._restore(DqnState.model_validate(saved))

    # -- choosing --------------------------------------------------------------------------------------

    def choose(self, context: BuildContext) -> Choice:
        """ε-greedy: a random action with probability ε, else the highest Q-value."""
        with self._lock:
            greedy = int(np.argmax(self._q(context)))
            eps, n = self.epsilon, len(self.actions)
            index = int(self._rng.integers(n)) if self._rng.random() < eps else greedy
        return self._choice(index, (1 - eps) + eps / n if index == greedy else eps / n)

    def pick(self, context: BuildContext) -> int:
        return self.choose(context).action_id

    def best(self, context: BuildContext) -> Choice:
        with self._lock:
            index = int(np.argmax(self._q(context)))
            eps = self.epsilon
        return self._choice(index, (1 - eps) + eps / len(self.actions))

    def success_rates(self, context: BuildContext) -> dict[int, float]:
        """The Q-values (the expected reward: a success rate), clipped to [0, 1]."""
        with self._lock:
            q = np.clip(self._q(context), 0.0, 1.0)
        return {a.action_id: float(v) for a, v in zip(self.actions, q, strict=True)}

    @property
    def epsilon(self) -> float:
        done = min(1.0, self.updates / self._exploration) if self._exploration else 1.0
        return 1.0 + (self._final - 1.0) * done

    # -- learning --------------------------------------------------------------------------------------

    def update(self, context: BuildContext, action_id: int, success: bool) -> None:
        column = self._column(action_id)
        with self._lock:
            self._add(observation(context), column, 1.0 if success else 0.0)
            self.updates += 1
            if self._model.replay_buffer.size() >= max(self._starts, BATCH_SIZE):
                self._model.train(gradient_steps=1, batch_size=BATCH_SIZE)
        self._save()

    def prior(self, context: BuildContext, action_id: int, strength: float) -> None:
        """As if ``strength`` builds (rounded, at least one) with the action had succeeded in this context:
        replayed with the rest, outweighed by real builds."""
        column = self._column(action_id)
        if not 0 < strength <= MAX_PRIOR_STRENGTH:
            raise InvalidInput.for_field("strength", f"must be in (0, {MAX_PRIOR_STRENGTH:g}]")
        obs = observation(context)
        with self._lock:
            for _ in range(max(1, round(strength))):
                self._add(obs, column, 1.0)
        self._save()

    # -- state -----------------------------------------------------------------------------------------

    def state(self) -> dict[str, object]:
        with self._lock:
            buffer = io.BytesIO()
            self._torch.save(self._model.get_parameters(), buffer)
            rb = self._model.replay_buffer
            n = rb.size()
            rows = np.concatenate(
                [rb.observations[:n, 0], rb.actions[:n, 0].astype(np.float32), rb.rewards[:n]], axis=1
            ).astype(np.float32)
            return DqnState(
                action_ids=[a.action_id for a in self.actions],
                updates=self.updates,
                parameters=base64.b64encode(buffer.getvalue()).decode(),
                transitions=base64.b64encode(rows.tobytes()).decode(),
            ).model_dump()

    def save(self) -> None:
        self._store.save(self.state())

    def reloaded(self) -> DqnOptimizer:
        """A new optimizer from the state saved now, seeded as this one was (it saves nothing itself).
        Builds a network: ``/metrics`` pays it at every scrape with the DQN."""
        return DqnOptimizer(
            self.actions,
            store=self._store,
            seed=self._seed,
            exploration_builds=self._exploration,
            final_epsilon=self._final,
            learning_starts=self._starts,
            buffer_size=self._buffer_size,
            autosave=False,
        )

    def _save(self) -> None:
        if self._autosave:
            self.save()

    def _restore(self, state: DqnState) -> None:
        if state.action_ids != [a.action_id for a in self.actions]:
            raise InvalidInput.for_field("action_ids", "the saved DQN was trained on another action catalog")
        raw = io.BytesIO(base64.b64decode(state.parameters))
        self._model.set_parameters(self._torch.load(raw, weights_only=True), device="cpu")
        width = self._model.observation_space.shape[0] + 2
        rows = np.frombuffer(base64.b64decode(state.transitions), dtype=np.float32).reshape(-1, width)
        for row in rows:
            self._add(row[:-2], int(row[-2]), float(row[-1]))
        self.updates = state.updates

    def _add(self, obs: np.ndarray, column: int, reward: float) -> None:
        self._model.replay_buffer.add(
            obs[None], obs[None], np.array([column]), np.array([reward]), np.array([True]), [{}]
        )

    def _q(self, context: BuildContext) -> np.ndarray:
        with self._torch.no_grad():
            q = self._model.q_net(self._torch.as_tensor(observation(context)[None]))
        return np.asarray(q[0].numpy(), dtype=np.float64)

    def _column(self, action_id: int) -> int:
        index = self._index.get(action_id)
        if index is None:
            known = ", ".join(str(i) for i in self._index)
            raise InvalidInput.for_field("action_id", f"unknown action {action_id} (known: {known})")
        return index

    def _choice(self, index: int, confidence: float) -> Choice:
        action = self.actions[index]
        return Choice(
            action_id=action.action_id,
            action_description=action.action_description,
            config=action.config,
            confidence=min(1.0, max(0.0, confidence)),
        )


def _Spaces(gym: Any, size: int, n: int) -> Any:  # noqa: N802 - builds a class
    """An environment that only declares the spaces: the DQN is stepped build by build, not by ``learn``."""

    class Spaces(gym.Env):  # type: ignore[misc]
        observation_space = gym.spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
        action_space = gym.spaces.Discrete(n)

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
            return np.zeros(size, dtype=np.float32), {}

        def step(self, action: Any) -> Any:
            return np.zeros(size, dtype=np.float32), 0.0, True, False, {}

    return Spaces()
