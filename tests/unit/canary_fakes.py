"""Fakes for the canary's unit tests, through its Protocols: an in-memory target (``TargetClient``) and a
window runner drawing latencies from a seeded NumPy generator (``WindowRunner``)."""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np
from pydantic import JsonValue

from opslab.canary import Flags, LiveWindow, LoadSpec, Measurement, Plan, parse_plan
from opslab.errors import Unavailable

BASE: Flags = {
    "control": {"flow_policy": "static", "target_p95": 1200.0},
    "routing": {"mode": "default", "topk_threshold": 32},
}
MEDIAN_MS = 200.0


class FakeTarget:
    """A service in memory: flags, dependency health, a mini report; every call recorded. ``down`` makes
    every call fail as an unreachable target does; ``fail_calls`` fails those call numbers only."""

    def __init__(self, *, qdrant: bool = True, report: str | None = None) -> None:
        self.flags: Flags = copy.deepcopy(BASE)
        self.deps = {"redis": True, "qdrant": qdrant}
        self.report = report
        self.calls: list[str] = []
        self.down = False
        self.fail_calls: set[int] = set()

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.down or len(self.calls) in self.fail_calls:
            raise Unavailable("target http://fake.invalid: connection refused")

    def health(self) -> dict[str, JsonValue]:
        self._call("health")
        health: dict[str, JsonValue] = {name: {"ok": ok} for name, ok in self.deps.items()}
        return {"ok": all(self.deps.values()), "health": health}

    def get_flags(self) -> Flags:
        self._call("get_flags")
        return copy.deepcopy(self.flags)

    def set_flags(self, flags: Flags) -> Flags:
        self._call("set_flags")
        self.flags = copy.deepcopy(flags)
        return flags

    def load(self) -> LoadSpec:
        return LoadSpec.get("http://fake.invalid/api/search")

    def start_experiment(self, body: dict[str, JsonValue]) -> dict[str, JsonValue]:
        self._call("start_experiment")
        return {"status": "running"}

    def fetch_report(self) -> str | None:
        self._call("fetch_report")
        return self.report


class SeededLoad:
    """The window runner: log-normal latencies around ``MEDIAN_MS``, shifted by ``effect`` (−0.2: 20 %
    faster) while the target runs the candidate's flags, which also fail ``b_error_rate`` of requests.
    ``on_window`` runs after each window (a target dying, a Ctrl-C); ``clock`` is the time windows took."""

    def __init__(
        self, target: FakeTarget, *, effect: float, b_error_rate: float = 0.0, seed: int = 7
    ) -> None:
        self.target, self.effect, self.b_error_rate = target, effect, b_error_rate
        self.rng = np.random.default_rng(seed)
        self.arms: list[str] = []
        self.on_window: Any = None
        self.now = 0.0

    def clock(self) -> float:
        """Time as this load sees it: it passes only while a window runs."""
        return self.now

    def __call__(
        self,
        load: LoadSpec,
        *,
        arm: str,
        qps: float,
        seconds: float,
        warmup_s: float = 0.0,
        timeout_s: float = 5.0,
        cancel: threading.Event | None = None,
        live: LiveWindow | None = None,
    ) -> Measurement:
        self.arms.append(arm)
        self.now += seconds
        candidate = self.target.flags != BASE
        n = int(qps * (seconds - warmup_s))
        median = MEDIAN_MS * (1 + self.effect if candidate else 1.0)
        errors = int(self.rng.binomial(n, self.b_error_rate)) if candidate else 0
        latencies = self.rng.lognormal(np.log(median), 0.1, n - errors)
        if self.on_window:
            self.on_window(len(self.arms))
        return Measurement(arm=arm, latencies_ms=list(latencies), errors=errors, sent=n, duration_s=n / qps)


def plan_for(**changes: Any) -> Plan:
    data: dict[str, Any] = {
        "experiment": {
            "qps": 100.0,
            "window_sec": 3.0,
            "rounds": 2,
            "flow_policy": "static",
            "target_p95": 1200,
            "routing_mode": "rules",
            "topk_threshold": 20,
        },
        "target": {"base_url": "http://fake.invalid"},
        "seed": 1,
    }
    data.update(changes)
    return parse_plan(data)
