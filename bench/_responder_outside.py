"""Faults from outside the chaos server, for ``bench/responder.py``: each injected by hand into a fresh
sandbox world (a signal to a process, a lock on the target's database, a slow TCP path to the dependency)
with a responder polling it at the suite's interval, timed from the injection to the incident's opening
(MTTD) and to its verified recovery (MTTR), with the category it named and the actions it took."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from opslab.api import free_port
from opslab.knowledge import KnowledgeBase
from opslab.responder import HttpActionExecutor, HttpTargetProbe, InMemoryIncidentStore, Responder
from opslab.sandbox import TargetOptions, World, WorldPorts
from opslab.sandbox.harm import DelayProxy
from opslab.sandbox.suite import responder_config

WARMUP_POLLS = 6
MAX_POLLS = 120


@dataclass(frozen=True)
class Drill:
    name: str
    expected: str  # the category a right diagnosis names
    outcome: str  # resolved | escalated
    inject: Callable[[World, Path], Callable[[], None]]  # -> undo
    proxy: bool = False


def _kill(part: str, sig: signal.Signals) -> Callable[[World, Path], Callable[[], None]]:
    def inject(world: World, _data: Path) -> Callable[[], None]:
        pid = world.pid(part)  # type: ignore[arg-type]
        os.kill(pid, sig)

        def undo() -> None:
            if sig == signal.SIGSTOP:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

        return undo

    return inject


def _lock(_world: World, data: Path) -> Callable[[], None]:
    conn = sqlite3.connect(data / "sandbox" / "target" / "orders.db", timeout=10, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")

    def undo() -> None:
        conn.rollback()
        conn.close()

    return undo


DRILLS: tuple[Drill, ...] = (
    Drill(
        "dependency killed (SIGKILL)", "dependency_outage", "resolved", _kill("dependency", signal.SIGKILL)
    ),
    Drill("target killed (SIGKILL)", "target_down", "resolved", _kill("target", signal.SIGKILL)),
    Drill("target hung (SIGSTOP)", "target_down", "resolved", _kill("target", signal.SIGSTOP)),
    Drill("external lock on the target's database", "database_lock", "escalated", _lock),
    Drill(
        "400 ms added on the path to the dependency", "network_latency", "escalated", lambda w, d: _noop, True
    ),
)


def _noop() -> None:
    return None


@contextlib.contextmanager
def _world(data: Path, drill: Drill, window_s: float) -> Iterator[tuple[World, DelayProxy | None]]:
    if not drill.proxy:
        with World.start(data, ports=WorldPorts(0, 0, 0, 0), target=TargetOptions(window_s=window_s)) as w:
            yield w, None
        return
    dependency = free_port()
    with DelayProxy(dependency) as proxy:
        options = TargetOptions(window_s=window_s, dependency_url=f"http://127.0.0.1:{proxy.port}")
        with World.start(data, ports=WorldPorts(0, dependency, 0, 0), target=options) as w:
            yield w, proxy


def run_drill(drill: Drill, data: Path, *, poll_interval_s: float) -> dict[str, Any]:
    window_s = max(2.0, 3 * poll_interval_s)
    with _world(data, drill, window_s) as (world, proxy):
        store = InMemoryIncidentStore()
        actions = HttpActionExecutor(world.url("actions"), world.action_token)
        responder = Responder(
            probe=HttpTargetProbe(world.url("target")),
            actions=actions,
            store=store,
            knowledge=KnowledgeBase.load(data / "knowledge"),
            knowledge_dir=data / "knowledge",
            checkpointer=InMemorySaver(),
            config=responder_config(poll_interval_s, window_s),
        )
        time.sleep(window_s)
        for _ in range(WARMUP_POLLS):
            responder.poll_once()
            time.sleep(poll_interval_s)
        before = len(store.list())
        injected = datetime.now(UTC)
        undo = drill.inject(world, data)
        if proxy is not None:
            proxy.delay_s = 0.4
        try:
            for _ in range(MAX_POLLS):
                time.sleep(poll_interval_s)
                responder.poll_once()
                incidents = store.list()
                if len(incidents) > before and incidents[0].finished:
                    break
            for _ in range(5):  # a few more polls: one incident per fault, not one every few polls
                time.sleep(poll_interval_s)
                responder.poll_once()
        finally:
            undo()
        incidents = sorted(store.list(), key=lambda i: i.opened_at)[before:]
    first = incidents[0] if incidents else None
    return {
        "drill": drill.name,
        "expected": drill.expected,
        "expected_outcome": drill.outcome,
        "warmup_incidents": before,
        "incidents": len(incidents),
        "category": first.category if first else None,
        "diagnosis_correct": bool(first and first.category == drill.expected),
        "outcome": first.status if first else "quiet",
        "outcome_correct": bool(first and first.status == drill.outcome),
        "actions": [a.action for i in incidents for a in i.actions],
        "mttd_s": round((first.opened_at - injected).total_seconds(), 2) if first else None,
        "mttr_s": (
            round((first.resolved_at - injected).total_seconds(), 2)
            if first and first.resolved_at is not None
            else None
        ),
        "recommendation": first.recommendation[:300] if first else "",
    }
