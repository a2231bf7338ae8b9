"""What runs beside a chaos scenario, as it would beside a real fault: the suite's faults are injected while
the service is busy or unlucky, and each must still be resolved with no false action.

- ``canary``: the target runs its own A/B experiment (a canary in ``mode: report``: its own open-loop load,
  announced in its health) from before the fault to well after it;
- ``burst``: a burst of extra requests (five times the target's own traffic) starts with the fault;
- ``kill_switch``: the responder is halted when the fault comes and released ``KILL_SWITCH_S`` later;
- ``repeat``: once the fault is resolved it is injected again at once, while the action that fixed it
  cools down (the responder runs with a cooldown here).

Two busy cores are the bench's other column (``harm.busy_cpus``), combined with each of these.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Literal, Protocol

import httpx

Beside = Literal["none", "canary", "burst", "kill_switch", "repeat"]
BESIDE: tuple[Beside, ...] = ("none", "canary", "burst", "kill_switch", "repeat")
KILL_SWITCH_S = 10.0
BURST_S = 20.0
BURST_RPS = 100.0
REPEAT_COOLDOWN_S = 20.0


class Halting(Protocol):
    def halt(self, *, reason: str = "") -> None: ...
    def unhalt(self) -> None: ...


class Alongside:
    """Started before the fault (``start``), told when it is injected (``injected``) and once a poll
    (``tick``: True when the scenario must go on), stopped after the scenario (``stop``)."""

    def __init__(self, mode: Beside, target_url: str, responder: Halting) -> None:
        self.mode, self.target_url, self.responder = mode, target_url.rstrip("/"), responder
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._injected_at: float | None = None
        self.repeats_left = 1 if mode == "repeat" else 0

    def start(self) -> None:
        if self.mode == "canary":
            body = {"candidate_flags": {}, "qps": 15, "window_sec": 15, "rounds": 2, "seed": 7}
            httpx.post(f"{self.target_url}/api/lab/run", json=body, timeout=10).raise_for_status()

    def injected(self) -> None:
        self._injected_at = time.monotonic()
        if self.mode == "kill_switch":
            self.responder.halt(reason="beside: kill switch during the fault")
        elif self.mode == "burst":
            self._spawn(self._burst)

    def tick(self) -> None:
        if (
            self.mode == "kill_switch"
            and self._injected_at is not None
            and time.monotonic() - self._injected_at >= KILL_SWITCH_S
        ):
            self.responder.unhalt()
            self._injected_at = None

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        if self.mode == "kill_switch":
            self.responder.unhalt()

    def _spawn(self, target: object) -> None:
        t = threading.Thread(target=target, name=f"beside-{self.mode}", daemon=True)  # type: ignore[arg-type]
        t.start()
        self._threads.append(t)

    def _burst(self) -> None:
        """Open-loop requests at ``BURST_RPS`` for ``BURST_S`` (a failed request is just traffic)."""
        interval, end = 1.0 / BURST_RPS, time.monotonic() + BURST_S
        with httpx.Client(base_url=self.target_url, timeout=5.0) as http:
            next_at = time.monotonic()
            while not self._stop.is_set() and time.monotonic() < end:
                with contextlib.suppress(httpx.HTTPError):  # a failed request is just traffic
                    http.get("/api/search", params={"q": "burst"})
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
