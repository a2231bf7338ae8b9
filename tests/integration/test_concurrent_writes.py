"""Clients that race on one run id (an SDK retrying a slow request, two replicas behind a load balancer):
every answer is a 2xx and one copy of the run is kept, on SQLite and PostgreSQL, for new and existing
ids, single runs, batches, OTLP traces and scores."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from opslab.api import ServerThread, create_app
from opslab.config import Settings
from opslab.store import make_engine
from opslab.store.tables import agent_runs, run_steps
from tests.otlp_json import export, span

CLIENTS = 8


@pytest.fixture
def service(settings: Settings) -> Iterator[str]:
    with ServerThread(create_app(settings)) as server:
        yield server.url


def run(run_id: str, version: int, *, steps: int = 2) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "agent_name": "race",
        "status": "success",
        "started_at": "2026-02-01T00:00:00Z",
        "steps": [{"step_id": f"s{i}", "status": "success", "name": f"v{version}"} for i in range(steps)],
    }


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Each call on its own thread, released together."""
    gate = threading.Barrier(len(calls))
    answers: list[httpx.Response | BaseException] = [RuntimeError("no answer")] * len(calls)

    def go(i: int) -> None:
        gate.wait()
        try:
            answers[i] = calls[i]()
        except BaseException as exc:  # the thread's failure is the test's, below
            answers[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a in answers:
        if isinstance(a, BaseException):
            raise a
    return [a for a in answers if isinstance(a, httpx.Response)]


def stored(db_url: str, run_id: str) -> tuple[int, int]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            runs = conn.scalar(select(func.count()).where(agent_runs.c.run_id == run_id))
            steps = conn.scalar(select(func.count()).where(run_steps.c.run_id == run_id))
            return int(runs or 0), int(steps or 0)
    finally:
        engine.dispose()


def post_each(url: str, path: str, bodies: list[Any]) -> list[httpx.Response]:
    def call(body: Any) -> Callable[[], httpx.Response]:
        return lambda: httpx.post(f"{url}{path}", json=body, timeout=60)

    return at_once([call(b) for b in bodies])


def test_clients_racing_on_a_new_run_id_all_succeed_and_one_run_is_kept(service: str, db_url: str) -> None:
    answers = post_each(service, "/agent-runs", [run("race-new", i) for i in range(CLIENTS)])
    codes = sorted(a.status_code for a in answers)
    assert all(c in (200, 201) for c in codes), [(a.status_code, a.text[:200]) for a in answers]
    assert codes.count(201) == 1, codes  # one created it, the others replaced it
    assert stored(db_url, "race-new") == (1, 2)


def test_clients_racing_to_replace_an_existing_run_all_succeed(service: str, db_url: str) -> None:
    assert httpx.post(f"{service}/agent-runs", json=run("race-old", 0), timeout=30).status_code == 201
    bodies = [run("race-old", i, steps=1 + i % 3) for i in range(CLIENTS)]
    answers = post_each(service, "/agent-runs", bodies)
    assert [a.status_code for a in answers] == [200] * CLIENTS, [a.text[:200] for a in answers]
    runs, steps = stored(db_url, "race-old")
    assert runs == 1 and steps in (1, 2, 3)  # one client's whole copy, never a mix


def test_batches_overlapping_in_different_orders_never_deadlock(service: str, db_url: str) -> None:
    ids = [f"race-b{i}" for i in range(6)]
    bodies = [[run(rid, k) for rid in (ids if k % 2 else list(reversed(ids)))] for k in range(CLIENTS)]
    answers = post_each(service, "/agent-runs/batch", bodies)
    assert [a.status_code for a in answers] == [200] * CLIENTS, [a.text[:300] for a in answers]
    assert all(a.json()["failed"] == 0 for a in answers)
    for rid in ids:
        assert stored(db_url, rid) == (1, 2)


def test_a_large_batch_racing_with_single_runs_keeps_every_run_once(service: str, db_url: str) -> None:
    ids = [f"race-l{i}" for i in range(120)]  # over the per-key lock budget: the batch locks all runs
    calls: list[Callable[[], httpx.Response]] = [
        lambda: httpx.post(f"{service}/agent-runs/batch", json=[run(r, 0) for r in ids], timeout=60)
    ]
    calls += [
        (lambda rid=rid: httpx.post(f"{service}/agent-runs", json=run(rid, 1), timeout=60)) for rid in ids[:7]
    ]
    answers = at_once(calls)
    assert all(200 <= a.status_code < 300 for a in answers), [a.text[:200] for a in answers]
    for rid in ids[:10]:
        assert stored(db_url, rid) == (1, 2)


def test_exporters_sending_spans_of_one_trace_at_once_make_one_run(service: str, db_url: str) -> None:
    trace = "5b8efff798038103d269b633813fc60c"
    root = span(
        trace,
        "a000000000000001",
        "invoke_agent support",
        start=0,
        end=9,
        gen_ai__operation__name="invoke_agent",
    )
    children = [
        span(
            trace,
            f"b00000000000000{i}",
            f"execute_tool t{i}",
            "a000000000000001",
            start=i,
            end=i + 1,
            gen_ai__operation__name="execute_tool",
            gen_ai__tool__name=f"t{i}",
        )
        for i in range(1, CLIENTS)
    ]
    answers = post_each(service, "/v1/traces", [export([s]) for s in (root, *children)])
    assert [a.status_code for a in answers] == [200] * CLIENTS, [a.text[:300] for a in answers]
    view = httpx.get(f"{service}/v1/traces/{trace}", timeout=30).json()
    assert len(view["spans"]) == CLIENTS
    assert len(view["runs"]) == 1, view  # every span joined the root's run, whichever arrived last
    assert stored(db_url, view["runs"][0])[0] == 1
