"""Named leases on a real store (SQLite and PostgreSQL): one holder at a time, renewal, takeover after
expiry with a higher fencing token, and a leased service that runs once and fails over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, update

from opslab.jobs import LeasedService, LeaseKeeper, LeaseLost
from opslab.store import SqlLeaseStore
from opslab.store.tables import leases


def _expire(engine: Engine, name: str) -> None:
    from datetime import UTC, datetime, timedelta

    with engine.begin() as conn:
        conn.execute(
            update(leases)
            .where(leases.c.name == name)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def wait_for(what: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_one_holder_at_a_time_and_a_takeover_gets_a_higher_token(engine: Engine) -> None:
    store = SqlLeaseStore(engine)
    a = store.acquire("svc", "a", ttl_s=30, info={"who": "a"})
    assert a is not None and a.token == 1
    assert store.acquire("svc", "b", ttl_s=30) is None  # held and not expired
    again = store.acquire("svc", "a", ttl_s=30)
    assert again is not None and again.token == 1  # its own: renewed, same token
    _expire(engine, "svc")
    assert not store.valid(a)
    b = store.acquire("svc", "b", ttl_s=30)
    assert b is not None and b.token == 2 and b.holder == "b"
    assert store.renew(a, ttl_s=30) is None  # the old holder's renewal is fenced off
    assert store.renew(b, ttl_s=30) is not None
    store.release(b)
    c = store.acquire("svc", "c", ttl_s=30)
    assert c is not None and c.token == 3


def test_the_keeper_renews_and_notices_a_takeover(engine: Engine) -> None:
    store = SqlLeaseStore(engine)
    lease = store.acquire("k", "a", ttl_s=3.0)
    assert lease is not None
    with LeaseKeeper(store, lease, ttl_s=3.0) as keeper:
        first = store.get("k")
        wait_for(
            lambda: (
                (got := store.get("k")) is not None
                and first is not None
                and got.expires_at > first.expires_at
            )
        )
        keeper.check()  # still ours
        _expire(engine, "k")
        assert store.acquire("k", "b", ttl_s=30) is not None
        wait_for(keeper.lost.is_set)
        try:
            keeper.check()
        except LeaseLost:
            pass
        else:
            raise AssertionError("a lost lease passed its fencing check")


def test_a_leased_service_runs_in_one_process_and_the_other_takes_over_when_it_stops(engine: Engine) -> None:
    store = SqlLeaseStore(engine)
    running: list[str] = []
    lock = threading.Lock()

    def body_of(name: str) -> Callable[[threading.Event, LeaseKeeper], None]:
        def body(stop: threading.Event, keeper: LeaseKeeper) -> None:
            with lock:
                running.append(name)
            stop.wait()
            with lock:
                running.remove(name)

        return body

    a = LeasedService(store, "loop", "a", body_of("a"), ttl_s=1.0, retry_s=0.1)
    b = LeasedService(store, "loop", "b", body_of("b"), ttl_s=1.0, retry_s=0.1)
    a.start()
    wait_for(a.active.is_set)
    b.start()
    try:
        holder = b.holder_now()
        assert holder is not None and holder.holder == "a" and not b.active.is_set()
        with lock:
            assert running == ["a"]
        a.stop()  # releases: b takes over without waiting for the expiry
        wait_for(b.active.is_set)
        with lock:
            assert running == ["b"]
    finally:
        a.stop()
        b.stop()
