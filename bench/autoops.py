"""AutoOps' optimizer against the seed's: the same seeded simulated CI runner and the same build budget for
five policies: a random choice, a fixed best guess (the action best on average over the fleet), the
Thompson bandit (``opslab.autoops.ThompsonOptimizer``), the seed's Stable-Baselines3 DQN driven by SB3's own
``learn`` loop, trained on-line (one build = one episode; it sees exactly the builds the budget allows), and
``opslab.autoops.DqnOptimizer`` (``--optimizer dqn``: the same DQN stepped build by build through the
product's interface, its state saving left out like the bandit's). Per policy, over N seeds (median,
min, max): success rate over builds 1-50, 1-200, 1-1000, the rolling success rate (last 50 builds) at those
points, cumulative regret (sum over builds of best_p(context) - p(chosen)), and CPU seconds spent
choosing and learning. The target: bandit success after 200 builds >= DQN's, bandit CPU <= 1/100 of DQN's.

    python -m bench.autoops [--seeds 10] [--budget 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from bench._common import RESULTS, write_result
from opslab.autoops import (
    ACTIONS,
    BuildContext,
    BuildSimulator,
    InMemoryBanditStore,
    ThompsonOptimizer,
    dqn_observation,
)

INSTALL_HINT = (
    "the DQN baseline needs stable-baselines3, gymnasium and matplotlib: pip install 'opslab[bench]'"
)
POLICIES = ("random", "fixed_best_guess", "thompson", "dqn", "dqn_opslab")
CHECKPOINTS = (50, 200, 1000)
ROLLING = 50
DQN_SETTINGS = {
    "policy": "MlpPolicy (64, 64)",
    "learning_rate": 1e-3,
    "learning_starts": 50,
    "train_freq": 1,
    "gradient_steps": 1,
    "batch_size": 32,
    "exploration_fraction": 0.3,
    "exploration_final_eps": 0.05,
    "gamma": 0.0,
    "torch_threads": 1,
}


@dataclass
class Trace:
    """What one policy did on one seed: per build, success, regret, and the CPU it spent deciding."""

    successes: list[bool] = field(default_factory=list)
    regrets: list[float] = field(default_factory=list)
    cpu_s: float = 0.0


class Scorer:
    """Runs a build on the simulator and records it in a trace, outside the policy's CPU account."""

    def __init__(self, sim: BuildSimulator, trace: Trace) -> None:
        self.sim, self.trace = sim, trace

    def build(self, context: BuildContext, action_id: int) -> bool:
        probabilities = [self.sim.success_probability(a.config, context) for a in ACTIONS]
        self.trace.regrets.append(max(probabilities) - probabilities[action_id])
        success = self.sim.run(ACTIONS[action_id].config, context).status == "success"
        self.trace.successes.append(success)
        return success


def fixed_best_guess(seed: int, draws: int = 2_000) -> int:
    """The action best on average over the fleet's contexts: what a team would pick once and keep."""
    sim = BuildSimulator(seed=seed)
    totals = np.zeros(len(ACTIONS))
    for _ in range(draws):
        context = sim.sample_context()
        totals += [sim.success_probability(a.config, context) for a in ACTIONS]
    return int(np.argmax(totals))


def random_policy(rng: np.random.Generator) -> Callable[[BuildContext], int]:
    return lambda _context: int(rng.integers(len(ACTIONS)))


def fixed_policy(action_id: int) -> Callable[[BuildContext], int]:
    return lambda _context: action_id


def run_simple(seed: int, budget: int, pick: Callable[[BuildContext], int]) -> Trace:
    trace = Trace()
    scorer = Scorer(BuildSimulator(seed=seed), trace)
    for _ in range(budget):
        context = scorer.sim.sample_context()
        start = time.process_time()
        action_id = pick(context)
        trace.cpu_s += time.process_time() - start
        scorer.build(context, action_id)
    return trace


class Optimizer(Protocol):
    def pick(self, context: BuildContext) -> int: ...
    def update(self, context: BuildContext, action_id: int, success: bool) -> None: ...


def run_optimizer(make: Callable[[int], Optimizer], seed: int, budget: int) -> Trace:
    """One of the product's optimizers over the budget, then its CPU: the same run replayed in one timed
    block, from construction on. Under its seed an optimizer makes the same decisions from the same
    outcomes (checked), so the replay times choosing and learning alone — neither the simulator nor a timer
    call per decision (about 1 µs each, a tenth of the bandit's decision) is counted. Persistence is left
    out for every policy (the service saves after every build)."""
    trace = Trace()
    scorer = Scorer(BuildSimulator(seed=seed), trace)
    optimizer = make(seed)
    played: list[tuple[BuildContext, bool]] = []
    chosen: list[int] = []
    for _ in range(budget):
        context = scorer.sim.sample_context()
        action_id = optimizer.pick(context)
        success = scorer.build(context, action_id)
        optimizer.update(context, action_id, success)
        played.append((context, success))
        chosen.append(action_id)
    replayed: list[int] = []
    start = time.process_time()
    replay = make(seed)
    for context, success in played:
        action_id = replay.pick(context)
        replay.update(context, action_id, success)
        replayed.append(action_id)
    trace.cpu_s = time.process_time() - start
    if replayed != chosen:
        raise SystemExit(f"{type(replay).__name__} did not replay its own run (seed {seed})")
    return trace


def thompson(seed: int) -> Optimizer:
    return ThompsonOptimizer(store=InMemoryBanditStore(), seed=seed, autosave=False)


def dqn_opslab(seed: int) -> Optimizer:
    """The product's DQN (``opslab autoops run --optimizer dqn``): choose, build, update, one at a time."""
    from opslab.autoops import DqnOptimizer

    return DqnOptimizer(store=InMemoryBanditStore(), seed=seed, autosave=False)


def observation(context: BuildContext) -> np.ndarray:
    """The DQN's view, the product's own (``--optimizer dqn``): the bandit's feature buckets one-hot, plus
    the numeric context."""
    return dqn_observation(context)


_warm: list[bool] = []


def run_dqn(seed: int, budget: int) -> Trace:
    try:
        import gymnasium as gym
        import torch
        from stable_baselines3 import DQN
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(INSTALL_HINT) from exc

    trace = Trace()
    scorer = Scorer(BuildSimulator(seed=seed), trace)
    size = len(observation(BuildContext()))

    class BuildEnv(gym.Env[np.ndarray, np.int64]):
        """One episode = one build on the shared simulator; reward 1 on success."""

        observation_space = gym.spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
        action_space = gym.spaces.Discrete(len(ACTIONS))

        def __init__(self, scorer: Scorer) -> None:
            self.scorer = scorer
            self.context = BuildContext()
            self.outside = 0.0  # CPU spent in the simulator and the scorer, not the policy's

        def reset(
            self, *, seed: int | None = None, options: dict[str, Any] | None = None
        ) -> tuple[np.ndarray, dict[str, Any]]:
            super().reset(seed=seed)
            start = time.process_time()
            self.context = self.scorer.sim.sample_context()
            self.outside += time.process_time() - start
            return observation(self.context), {}

        def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
            start = time.process_time()
            success = self.scorer.build(self.context, int(action))
            self.outside += time.process_time() - start
            return observation(self.context), float(success), True, False, {}

    torch.set_num_threads(1)
    if not _warm:
        # Torch's first model pays one-off initialisation; it is not the method's cost per run.
        warm_up = BuildEnv(Scorer(BuildSimulator(seed=seed + 10_000), Trace()))
        DQN("MlpPolicy", warm_up, learning_starts=10, device="cpu").learn(total_timesteps=40)
        _warm.append(True)
    env = BuildEnv(scorer)
    start = time.process_time()
    model = DQN(
        "MlpPolicy",
        env,
        learning_rate=1e-3,
        learning_starts=50,
        train_freq=1,
        gradient_steps=1,
        batch_size=32,
        exploration_fraction=0.3,
        exploration_final_eps=0.05,
        gamma=0.0,
        seed=seed,
        device="cpu",
    )
    model.learn(total_timesteps=budget)
    trace.cpu_s = time.process_time() - start - env.outside
    return trace


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def summarize(traces: list[Trace], budget: int) -> dict[str, Any]:
    points = [n for n in CHECKPOINTS if n <= budget] or [budget]
    out: dict[str, Any] = {}
    for n in points:
        out[f"success_1_{n}"] = spread([float(np.mean(t.successes[:n])) for t in traces])
        out[f"rolling_success_at_{n}"] = spread(
            [float(np.mean(t.successes[max(0, n - ROLLING) : n])) for t in traces]
        )
    out["cumulative_regret"] = spread([float(np.sum(t.regrets)) for t in traces], 1)
    out["cpu_s"] = spread([t.cpu_s for t in traces], 4)
    return out


def plot(curves: dict[str, list[Trace]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(INSTALL_HINT) from exc
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, traces in curves.items():
        median = np.median(np.array([np.cumsum(t.regrets) for t in traces]), axis=0)
        ax.plot(np.arange(1, len(median) + 1), median, label=name)
    ax.set_xlabel("build")
    ax.set_ylabel("cumulative regret (median over seeds)")
    ax.set_title("AutoOps optimizer: cumulative regret on the simulated CI runner")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=1000)
    args = parser.parse_args()
    curves: dict[str, list[Trace]] = {name: [] for name in POLICIES}
    fixed: list[int] = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        curves["random"].append(run_simple(seed, args.budget, random_policy(rng)))
        guess = fixed_best_guess(seed)
        fixed.append(guess)
        curves["fixed_best_guess"].append(run_simple(seed, args.budget, fixed_policy(guess)))
        curves["thompson"].append(run_optimizer(thompson, seed, args.budget))
        curves["dqn"].append(run_dqn(seed, args.budget))
        curves["dqn_opslab"].append(run_optimizer(dqn_opslab, seed, args.budget))
    table = {name: summarize(traces, args.budget) for name, traces in curves.items()}
    at = min(200, args.budget)
    bandit_success = table["thompson"][f"success_1_{at}"]["median"]
    dqn_success = table["dqn"][f"success_1_{at}"]["median"]
    bandit_cpu, dqn_cpu = table["thompson"]["cpu_s"]["median"], table["dqn"]["cpu_s"]["median"]
    png = RESULTS / f"autoops-regret-{datetime.now(UTC):%Y%m%d}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(curves, str(png))
    write_result(
        "autoops",
        {
            "seeds": args.seeds,
            "budget": args.budget,
            "actions": len(ACTIONS),
            "fixed_best_guess_action": {str(s): a for s, a in enumerate(fixed)},
            "dqn_settings": DQN_SETTINGS,
            "cpu_note": "time.process_time of choosing and learning only; simulator and scoring excluded "
            "(thompson, dqn_opslab: their own run replayed in one timed block; dqn: SB3's learn loop minus "
            "the time spent in the environment)",
            "policies": table,
            "targets": {
                f"bandit_success_1_{at}_ge_dqn": {
                    "bandit": bandit_success,
                    "dqn": dqn_success,
                    "met": bandit_success >= dqn_success,
                },
                "bandit_cpu_le_dqn_over_100": {
                    "bandit_s": bandit_cpu,
                    "dqn_s": dqn_cpu,
                    "ratio": round(dqn_cpu / bandit_cpu, 1) if bandit_cpu else None,
                    "met": bandit_cpu <= dqn_cpu / 100,
                },
            },
            "regret_plot": png.name,
        },
    )


if __name__ == "__main__":
    main()
