"""Helpers for the responder against faults from outside its chaos server: a real sandbox world on free
ports, a responder polling it at 1 s (given the target's URL and the action server, nothing else), and
real means of harm — signals to processes, another process's memory, a lock on the target's database, a
full volume, a slow TCP path, busy CPUs. Nothing here goes through opslab's chaos server."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from langgraph.checkpoint.memory import InMemorySaver

from opslab.knowledge import KnowledgeBase
from opslab.responder import (
    HttpActionExecutor,
    HttpTargetProbe,
    Incident,
    InMemoryIncidentStore,
    Responder,
    ResponderConfig,
)
from opslab.sandbox import TargetOptions, World, WorldPorts

POLL_S = 1.0
WINDOW_S = 3.0


def responder_config(**overrides: object) -> ResponderConfig:
    base: dict[str, object] = {
        "poll_interval_s": POLL_S,
        "settle_s": WINDOW_S + POLL_S,
        "verify_polls": 2,
        "verify_interval_s": POLL_S,
        "cooldown_s": 0.0,
    }
    return ResponderConfig.model_validate({**base, **overrides})


@dataclass
class Watch:
    """A responder on a world, polled by the test at the responder's own interval."""

    world: World
    responder: Responder
    store: InMemoryIncidentStore
    actions: HttpActionExecutor
    polls: int = 0
    notes: list[str] = field(default_factory=list)

    def poll(self) -> Incident | None:
        incident = self.responder.poll_once()
        self.polls += 1
        time.sleep(POLL_S)
        return incident

    def warm_up(self, polls: int = 5) -> None:
        for _ in range(polls):
            self.poll()
        assert self.store.list() == [], [i.recommendation for i in self.store.list()]

    def until(self, done: Callable[[list[Incident]], bool], *, polls: int, what: str) -> list[Incident]:
        """Poll until ``done(incidents)``, at most ``polls`` times."""
        for _ in range(polls):
            self.poll()
            incidents = self.store.list()
            if done(incidents):
                return incidents
        raise AssertionError(
            f"{what}: not within {polls} polls; {[i.model_dump() for i in self.store.list()]}"
        )

    def finished(self, what: str, polls: int = 120) -> Incident:
        incidents = self.until(lambda i: bool(i) and i[0].finished, polls=polls, what=what)
        return incidents[0]

    def healthy(self) -> bool:
        return self.actions.verify().get("is_healthy") is True


@contextlib.contextmanager
def watched_world(
    data: Path, *, target: TargetOptions | None = None, ports: WorldPorts | None = None, **config: object
) -> Iterator[Watch]:
    options = target or TargetOptions(window_s=WINDOW_S)
    with World.start(data, ports=ports or WorldPorts(0, 0, 0, 0), target=options) as world:
        knowledge = data / "knowledge"
        actions = HttpActionExecutor(world.url("actions"), world.action_token)
        store = InMemoryIncidentStore()
        responder = Responder(
            probe=HttpTargetProbe(world.url("target")),
            actions=actions,
            store=store,
            knowledge=KnowledgeBase.load(knowledge),
            knowledge_dir=knowledge,
            checkpointer=InMemorySaver(),
            config=responder_config(**config),
        )
        wait_healthy(world)
        yield Watch(world, responder, store, actions)


def wait_healthy(world: World, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {world.action_token}"}
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{world.url('actions')}/action/verify-target-health", headers=headers, timeout=10)
            if r.json().get("is_healthy") is True:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError("the world never became healthy")


@contextlib.contextmanager
def memory_hog(mb: int) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding ``mb`` MB of touched memory until the block ends."""
    code = (
        "import sys, time\n"
        f"b = bytearray({mb} * 1024 * 1024)\n"
        "b[::4096] = b'\\x01' * len(range(0, len(b), 4096))\n"
        "print('ready', flush=True)\n"
        "time.sleep(3600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()
