"""What the service is — its version and its flags — as the baseline knows it."""

from __future__ import annotations

from opslab.responder.observation import Observation


class Settled:
    """What the service is (its version and flags) as the baseline knows it: a change is taken only once
    it has been seen with healthy signals for ``polls`` polls in a row. The first polls after a flag flip
    are healthy still (the metrics window holds requests from before it); were the flip taken then, the
    slowness it brings would be measured against a baseline that already has it, and a busy host would
    "explain" it as nothing having changed."""

    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.version: str | None = None
        self.flags: dict[str, bool] = {}
        self._seen = False
        self._pending: tuple[str | None, tuple[tuple[str, bool], ...]] | None = None
        self._count = 0

    def see(self, obs: Observation, *, healthy: bool) -> None:
        now = (obs.version, tuple(sorted(obs.flags.items())))
        if not self._seen:
            self.version, self.flags, self._seen = obs.version, dict(obs.flags), True
            return
        if now == (self.version, tuple(sorted(self.flags.items()))):
            self._pending, self._count = None, 0
            return
        if not healthy:  # a change seen with bad signals is not the new normal
            self._pending, self._count = None, 0
            return
        if now != self._pending:
            self._pending, self._count = now, 0
        self._count += 1
        if self._count >= self.polls:
            self.version, self.flags = obs.version, dict(obs.flags)
            self._pending, self._count = None, 0
