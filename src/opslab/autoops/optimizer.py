"""The optimizer: a contextual Thompson-sampling bandit over the fixed catalog of build actions.

Each (context bucket, action) has a Beta posterior over the action's success rate. Buckets are shrunk
towards coarser ones, so a sparse bucket borrows from what the optimizer knows about similar pipelines:

    features(context)            e.g. repo:large|churn:high|flaky:low|last:oom
      └── without last error     repo:large|churn:high|flaky:low
            └── global pool      *          (Beta(1, 1) + every build of every pipeline)

A bucket's prior is its parent's posterior mean scaled to ``shrinkage`` pseudo-counts, so its posterior
is ``Beta(s + k·m, f + k·(1 − m))`` with ``m`` the parent's mean. ``choose`` samples one draw per action
(exploration), ``best`` takes the highest posterior mean; both report ``confidence``, the Monte-Carlo
probability under the posteriors that the returned action is the best one for this context.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from opslab.autoops.bandit_state import GLOBAL_BUCKET, BanditState, BanditStateStore
from opslab.autoops.model import ACTIONS, Action, BuildConfig, BuildContext, features
from opslab.errors import InvalidInput

MAX_PRIOR_STRENGTH = 1_000.0


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action_id: int
    action_description: str
    config: BuildConfig
    confidence: float = Field(ge=0, le=1, description="Posterior probability this action is the best.")


def bucket_chain(context: BuildContext) -> tuple[str, ...]:
    """The buckets a context belongs to, finest first, the global pool last."""
    names = features(context)
    return ("|".join(names), "|".join(names[:-1]), GLOBAL_BUCKET)


class ThompsonOptimizer:
    def __init__(
        self,
        actions: Sequence[Action] = ACTIONS,
        *,
        store: BanditStateStore,
        seed: int | None = None,
        shrinkage: float = 4.0,
        confidence_samples: int = 128,
        autosave: bool = True,
    ) -> None:
        if not actions:
            raise InvalidInput.for_field("actions", "the catalog is empty")
        self.actions = tuple(actions)
        self._index = {a.action_id: i for i, a in enumerate(self.actions)}
        if len(self._index) != len(self.actions):
            raise InvalidInput.for_field("actions", "action ids must be unique")
        self._store = store
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._shrinkage = shrinkage
        self._samples = confidence_samples
        self._autosave = autosave
        self._n = len(self.actions)
        self._buckets: dict[str, list[float]] = {}
        # Posteriors per finest bucket, column by column: a build changes only its action's column (in every
        # bucket, through the global pool), so a decision recomputes only the columns changed since.
        self._changes = [0] * self._n
        self._posteriors: dict[str, tuple[list[float], list[float], list[int]]] = {}
        self.updates = 0
        saved = store.load()
        if saved is not None:
            self._restore(BanditState.model_validate(saved))

    # -- choosing --------------------------------------------------------------------------------------

    def pick(self, context: BuildContext) -> int:
        """Thompson sampling, the decision alone: the id of the action whose posterior draw is highest."""
        alpha, beta = self._posterior_lists(bucket_chain(context))
        g = self._rng.standard_gamma(alpha + beta).tolist()  # Beta draws as ratios of Gamma draws
        n = self._n
        draws = [g[i] / (g[i] + g[n + i]) for i in range(n)]
        return self.actions[draws.index(max(draws))].action_id

    def choose(self, context: BuildContext) -> Choice:
        """Thompson sampling: the action whose posterior draw is highest, with its confidence."""
        alpha, beta = self._posterior(context)
        draws = self._draws(alpha, beta, 1 + self._samples)
        # Row 0 is the Thompson draw; the other rows estimate how often that action is the best.
        index = int(np.argmax(draws[0]))
        return self._choice(index, draws[1:])

    def best(self, context: BuildContext) -> Choice:
        """The action with the highest posterior mean, without exploration."""
        alpha, beta = self._posterior(context)
        index = int(np.argmax(alpha / (alpha + beta)))
        return self._choice(index, self._draws(alpha, beta, self._samples))

    def success_rates(self, context: BuildContext) -> dict[int, float]:
        """Posterior mean success rate per action id."""
        alpha, beta = self._posterior(context)
        means = alpha / (alpha + beta)
        return {a.action_id: float(m) for a, m in zip(self.actions, means, strict=True)}

    # -- learning --------------------------------------------------------------------------------------

    def update(self, context: BuildContext, action_id: int, success: bool) -> None:
        """One finished build: counted in every bucket of the context's chain, then saved."""
        index = self._column(action_id)
        column = index + (0 if success else self._n)
        for key in bucket_chain(context):
            self._counts(key)[column] += 1.0
        self._changes[index] += 1
        self.updates += 1
        self._save()

    def prior(self, context: BuildContext, action_id: int, strength: float) -> None:
        """Believe, as if ``strength`` builds had succeeded, that the action suits this context's bucket.
        Later builds outweigh it: a suggestion is a prior, not an order."""
        column = self._column(action_id)
        if not 0 < strength <= MAX_PRIOR_STRENGTH:
            raise InvalidInput.for_field("strength", f"must be in (0, {MAX_PRIOR_STRENGTH:g}]")
        self._counts(bucket_chain(context)[0])[column] += float(strength)
        self._changes[column] += 1
        self._save()

    # -- state -----------------------------------------------------------------------------------------

    def state(self) -> dict[str, object]:
        """The JSON-able state, a fresh copy."""
        return {
            "schema_version": 1,
            "action_ids": [a.action_id for a in self.actions],
            "updates": self.updates,
            "buckets": {key: counts.copy() for key, counts in self._buckets.items()},
        }

    def _save(self) -> None:
        if self._autosave:
            self._store.save(self.state())

    def save(self) -> None:
        """Save now (with ``autosave=False`` nothing is saved otherwise)."""
        self._store.save(self.state())

    def reloaded(self) -> ThompsonOptimizer:
        """A new optimizer from the state saved now, seeded as this one was (it saves nothing itself)."""
        return ThompsonOptimizer(
            self.actions,
            store=self._store,
            seed=self._seed,
            shrinkage=self._shrinkage,
            confidence_samples=self._samples,
            autosave=False,
        )

    def _restore(self, state: BanditState) -> None:
        # Columns follow action ids, so a catalog that gained or lost actions keeps what it can.
        self.updates = state.updates
        saved = len(state.action_ids)
        for key, counts in state.buckets.items():
            if len(counts) != 2 * saved:
                raise InvalidInput.for_field("buckets", f"bucket {key!r} has {len(counts)} counts")
            mine = self._counts(key)
            for j, action_id in enumerate(state.action_ids):
                if (i := self._index.get(action_id)) is not None:
                    mine[i] = counts[j]
                    mine[i + self._n] = counts[j + saved]

    def _counts(self, key: str) -> list[float]:
        counts = self._buckets.get(key)
        if counts is None:
            counts = self._buckets[key] = [0.0] * (2 * self._n)
        return counts

    def _column(self, action_id: int) -> int:
        index = self._index.get(action_id)
        if index is None:
            known = ", ".join(str(i) for i in self._index)
            raise InvalidInput.for_field("action_id", f"unknown action {action_id} (known: {known})")
        return index

    def _posterior(self, context: BuildContext) -> tuple[np.ndarray, np.ndarray]:
        alpha, beta = self._posterior_lists(bucket_chain(context))
        return np.asarray(alpha), np.asarray(beta)

    def _posterior_lists(self, chain: tuple[str, ...]) -> tuple[list[float], list[float]]:
        """Beta parameters per action (kept between calls: do not modify them): the global pool's posterior,
        then each finer bucket's counts over a prior that is its parent's posterior mean scaled to
        ``shrinkage`` pseudo-builds. Plain loops: at ten actions they beat NumPy's per-call overhead, and
        this runs on every decision."""
        n = self._n
        cached = self._posteriors.get(chain[0])
        if cached is None:
            cached = self._posteriors[chain[0]] = ([0.0] * n, [0.0] * n, [-1] * n)
        alpha, beta, seen = cached
        changes = self._changes
        if seen == changes:
            return alpha, beta
        k, zero = self._shrinkage, [0.0] * (2 * n)
        root, *finer = [self._buckets.get(key) or zero for key in reversed(chain)]
        for i in range(n):
            if seen[i] == changes[i]:
                continue
            a, b = 1.0 + root[i], 1.0 + root[n + i]
            for counts in finer:
                m = k * a / (a + b)
                a, b = m + counts[i], (k - m) + counts[n + i]
            alpha[i], beta[i], seen[i] = a, b, changes[i]
        return alpha, beta

    def _draws(self, alpha: np.ndarray, beta: np.ndarray, rows: int) -> np.ndarray:
        """``rows`` joint draws from the Beta posteriors, as ratios of Gamma draws (one numpy call)."""
        gammas = self._rng.standard_gamma(np.concatenate([alpha, beta]), size=(rows, 2 * self._n))
        x, y = gammas[:, : self._n], gammas[:, self._n :]
        return np.asarray(x / (x + y))

    def _choice(self, index: int, draws: np.ndarray) -> Choice:
        confidence = float(np.mean(np.argmax(draws, axis=1) == index))
        action = self.actions[index]
        return Choice(
            action_id=action.action_id,
            action_description=action.action_description,
            config=action.config,
            confidence=confidence,
        )
