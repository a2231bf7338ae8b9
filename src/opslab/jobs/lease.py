"""Named leases: one holder at a time across every process that shares the database.

A lease is held for ``ttl_s`` and renewed by heartbeat; a holder that dies stops renewing and anyone may
take the lease once it expired. Every new holder gets a higher ``token`` (a fencing token): work done
under a lease re-checks that its token is still current before it acts, so a holder that was paused past
its expiry (and replaced) cannot act on stale authority.

``LeasedService`` runs a long-lived loop (the responder, the autoops loop) under a lease: it waits as a
standby until it holds the lease, runs the loop with an event that is set the moment the lease is lost,
and on losing it goes back to waiting. Exactly one process runs the loop; when it dies another takes over
within ``ttl_s`` plus one attempt interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

log = logging.getLogger("opslab.jobs")


class Lease(BaseModel):
    name: str
    holder: str
    token: int = Field(description="Fencing token: grows with every new holder.")
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    info: dict[str, Any] = Field(default_factory=dict)


class LeaseStore(Protocol):
    def acquire(
        self, name: str, holder: str, *, ttl_s: float, info: dict[str, Any] | None = None
    ) -> Lease | None:
        """Take ``name`` for ``holder`` if it is free, expired, or already ``holder``'s (then renewed)."""
        ...

    def renew(self, lease: Lease, *, ttl_s: float) -> Lease | None:
        """Extend ``lease`` while it is still the holder's (same token); None when it was taken."""
        ...

    def update_info(self, lease: Lease, info: dict[str, Any]) -> Lease | None:
        """Replace what the lease records (an intent, durably, before acting on it) while it is held."""
        ...

    def release(self, lease: Lease) -> None: ...
    def get(self, name: str) -> Lease | None: ...
    def held(self, prefix: str) -> list[Lease]:
        """Unexpired leases under ``prefix`` (who holds what now)."""
        ...

    def expired(self, prefix: str) -> list[Lease]:
        """Leases under ``prefix`` whose holders stopped renewing them (to recover what they left)."""
        ...

    def valid(self, lease: Lease) -> bool:
        """The lease is still held by its holder with its token, and not expired."""
        ...


class Versioned(BaseModel):
    """A leased service's shared state and its version (every change is a compare-and-set)."""

    version: int
    state: dict[str, Any]


class ServiceStateStore(Protocol):
    def read(self, name: str) -> Versioned | None: ...
    def write(self, name: str, state: dict[str, Any], *, expected: int) -> Versioned | None:
        """Replace the state if its version is still ``expected`` (0: new); None when it changed."""
        ...


class LeaseLost(Exception):  # noqa: N818 - a state, like Cancelled
    """The lease this work ran under is no longer held (expired and taken, or released)."""


class LeaseKeeper:
    """Renews a held lease every ``ttl_s / 3`` in a thread; ``lost`` is set when a renewal fails for
    good (taken by another holder, or not renewed before it expired)."""

    def __init__(self, store: LeaseStore, lease: Lease, *, ttl_s: float) -> None:
        self.store, self.lease, self.ttl_s = store, lease, ttl_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease:{lease.name}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease is still ours (the fencing check before an action)."""
        if self.lost.is_set() or not self.store.valid(self.lease):
            self.lost.set()
            raise LeaseLost(f"lease {self.lease.name!r} is no longer held by {self.lease.holder}")

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                renewed = self.store.renew(self.lease, ttl_s=self.ttl_s)
            except Exception as exc:  # noqa: BLE001 - an outage: retry until the lease would have expired
                log.warning("renewing lease %s failed: %s", self.lease.name, exc)
                if _expired(self.lease):
                    self.lost.set()
                    return
                continue
            if renewed is None:
                self.lost.set()
                return
            self.lease = renewed


def _expired(lease: Lease) -> bool:
    return datetime.now(UTC) >= lease.expires_at


class LeasedService:
    """Runs ``body(stop)`` in a thread while this process holds lease ``name`` (see the module docstring).

    ``body`` must return soon after ``stop`` is set: the service is stopping or the lease was lost."""

    def __init__(
        self,
        store: LeaseStore,
        name: str,
        holder: str,
        body: Callable[[threading.Event, LeaseKeeper], None],
        *,
        ttl_s: float,
        retry_s: float | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.store, self.name, self.holder, self.body = store, name, holder, body
        self.ttl_s, self.retry_s = ttl_s, retry_s if retry_s is not None else max(0.5, ttl_s / 5)
        self.info = info or {}
        self.active = threading.Event()  # set while this process holds the lease and runs the body
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"leased:{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def holder_now(self) -> Lease | None:
        """Who holds the lease now (this process or another), if anyone does."""
        lease = self.store.get(self.name)
        return lease if lease is not None and not _expired(lease) else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                lease = self.store.acquire(self.name, self.holder, ttl_s=self.ttl_s, info=self.info)
            except Exception as exc:  # noqa: BLE001 - database away: try again
                log.warning("lease %s: acquiring failed: %s", self.name, exc)
                lease = None
            if lease is None:
                self._stop.wait(self.retry_s)
                continue
            log.info("lease %s: held by %s (token %d)", self.name, self.holder, lease.token)
            with LeaseKeeper(self.store, lease, ttl_s=self.ttl_s) as keeper:
                stop = _either(self._stop, keeper.lost)
                self.active.set()
                try:
                    self.body(stop, keeper)
                except LeaseLost as exc:
                    log.warning("lease %s: %s; standing by", self.name, exc)
                except Exception:  # noqa: BLE001 - the body failed: release, wait, and try again
                    log.exception("lease %s: its service failed", self.name)
                finally:
                    self.active.clear()
            if keeper.lost.is_set():
                log.warning("lease %s: lost by %s", self.name, self.holder)
            else:
                try:
                    self.store.release(keeper.lease)
                except Exception as exc:  # noqa: BLE001 - it expires by itself
                    log.warning("lease %s: release failed: %s", self.name, exc)
            self._stop.wait(self.retry_s)


def _either(a: threading.Event, b: threading.Event) -> threading.Event:
    """An event set as soon as ``a`` or ``b`` is (watched by a small thread until then)."""
    out = threading.Event()

    def watch() -> None:
        while not out.is_set():
            if a.wait(0.2) or b.is_set():
                out.set()

    threading.Thread(target=watch, daemon=True, name="lease-watch").start()
    return out
