"""What changed on the target and who changed it, beyond what the target itself says: experiments that
hold it. A canary holds the lease ``canary:<target URL>`` for its whole run (``canary.guard``) in the
database the service shares; while one does, the target's load, flags and memory are the experiment's
doing, and the responder reports a regression against the experiment instead of acting on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opslab.responder.observation import Observation
from opslab.responder.ports import TargetProbe

if TYPE_CHECKING:
    from opslab.jobs import LeaseStore

log = logging.getLogger("opslab.responder")

PREFIX = "canary:"
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


def same_target(a: str, b: str) -> bool:
    """Two base URLs of one service: the same scheme, port and host (loopback names are one host)."""
    x, y = urlsplit(a.strip().rstrip("/")), urlsplit(b.strip().rstrip("/"))
    hosts = {(x.hostname or "").lower(), (y.hostname or "").lower()}
    same_host = len(hosts) == 1 or hosts <= _LOOPBACK
    return same_host and x.scheme == y.scheme and _port(x.scheme, x.port) == _port(y.scheme, y.port)


def _port(scheme: str, port: int | None) -> int | None:
    return port if port is not None else {"http": 80, "https": 443}.get(scheme)


class CanaryHolds:
    """The canaries holding ``target_url`` now, each as one line (an ``Experiments`` port)."""

    def __init__(self, leases: LeaseStore, target_url: str) -> None:
        self.leases, self.target_url = leases, target_url

    def __call__(self) -> list[str]:
        out = []
        for lease in self.leases.held(PREFIX):
            if not same_target(lease.name.removeprefix(PREFIX), self.target_url):
                continue
            info = lease.info or {}
            if info.get("phase") == "settled":
                continue
            run = str(info.get("run_key") or "?")[:80]
            out.append(f"canary {run} (held by {lease.holder[:80]} since {lease.acquired_at:%H:%M:%S})")
        return out


class WithExperiments:
    """A probe whose every observation also names the experiments registered on the target (``changes``):
    the watch, the workflow's checks and its verification all see them."""

    def __init__(self, inner: TargetProbe, experiments: Callable[[], list[str]]) -> None:
        self.inner, self.experiments = inner, experiments

    def observe(self) -> Observation:
        obs = self.inner.observe()
        try:
            registered = self.experiments()
        except Exception:  # noqa: BLE001 - no registry this poll: what the target says still counts
            log.exception("reading the experiments in progress failed")
            registered = []
        return obs.model_copy(update={"experiments": [*obs.experiments, *registered]}) if registered else obs
