"""The trial plan: variants × tasks × replications in a fixed order, each trial with a derived seed."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel

from opslab.lab.config import Resolved


class Trial(BaseModel):
    trial_id: str
    index: int
    variant_id: str
    bindings: dict[str, Any]
    task_id: str
    task: dict[str, Any]
    replication: int
    seed: int

    def identity(self) -> dict[str, Any]:
        """What names this trial in its record: trial, variant, task, replication and seed."""
        return {
            "trial_id": self.trial_id,
            "variant_id": self.variant_id,
            "task_id": self.task_id,
            "replication": self.replication,
            "seed": self.seed,
        }


def trial_seed(random_seed: int, variant_id: str, task_id: str, replication: int) -> int:
    digest = hashlib.sha256(f"{random_seed}:{variant_id}:{task_id}:{replication}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def count_trials(resolved: Resolved) -> int:
    """``len(expand_trials(resolved))``, without planning them."""
    cfg = resolved.config
    return len(cfg.variants.all()) * len(resolved.tasks) * cfg.design.replications


def trial_id(n: int) -> str:
    """The id of the plan's ``n``-th trial (from 1)."""
    return f"trial_{n}"


def trial_ids(resolved: Resolved) -> list[str]:
    """``[t.trial_id for t in expand_trials(resolved)]``, without planning them (the analysis after a
    run needs the ids alone)."""
    return [trial_id(n) for n in range(1, count_trials(resolved) + 1)]


def expand_trials(resolved: Resolved) -> list[Trial]:
    cfg = resolved.config
    trials: list[Trial] = []
    for variant in cfg.variants.all():
        for task in resolved.tasks:
            for rep in range(1, cfg.design.replications + 1):
                n = len(trials) + 1
                tid = str(task["task_id"])
                # From the validated config and tasks: constructed, not validated again (a run plans
                # its trials more than once, thousands each time).
                trials.append(
                    Trial.model_construct(
                        trial_id=trial_id(n),
                        index=n,
                        variant_id=variant.id,
                        bindings=variant.bindings,
                        task_id=tid,
                        task=task,
                        replication=rep,
                        seed=trial_seed(cfg.design.random_seed, variant.id, tid, rep),
                    )
                )
    return trials
