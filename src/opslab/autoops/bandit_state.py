"""The optimizer's persisted state: Beta counts per (context bucket, action), as a JSON-able dict that a
``BanditStateStore`` keeps (in memory here; in the database through ``opslab.store``)."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

GLOBAL_BUCKET = "*"


class BanditStateStore(Protocol):
    """Where the optimizer's state lives between restarts."""

    def load(self) -> dict[str, object] | None: ...

    def save(self, state: dict[str, object]) -> None: ...


class InMemoryBanditStore:
    """A store for tests and single-process use. The optimizer hands over a fresh dict on every save."""

    def __init__(self, state: dict[str, object] | None = None) -> None:
        self.state = state
        self.saves = 0

    def load(self) -> dict[str, object] | None:
        return self.state

    def save(self, state: dict[str, object]) -> None:
        self.state = state
        self.saves += 1


class BanditState(BaseModel):
    """Wire format. ``buckets[key]`` holds the successes of each action, then its failures, in the order
    of ``action_ids``; ``key`` is ``"|".join(features(context))`` or a coarser prefix, ``"*"`` the pool."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    action_ids: list[int]
    updates: int = Field(0, ge=0)
    buckets: dict[str, list[float]] = Field(default_factory=dict)
