"""Probes for the chaostoolkit experiments' steady-state hypotheses: what the target says of itself, as one
value a tolerance can judge (``provider: {type: python, module: opslab.sandbox.chaos.probes, func: …}``).

Why not chaostoolkit's HTTP provider: it returns the whole response, and its only tolerances that read
into a JSON body (``jsonpath``) need the optional ``jsonpath2`` package, which pins its own ANTLR runtime.
A probe here returns the one field the hypothesis is about, so a plain tolerance judges it: ``healthy``
for :func:`health_status`, ``[0, 300]`` for :func:`p95_latency_ms`.

A probe never raises. A target that does not answer is a value outside the tolerance (``unreachable``),
not a failed probe: chaostoolkit marks a run whose probe failed ``failed`` and then skips its rollbacks,
which would leave the experiment's breaks active.

``within_s`` (the experiments pass their ``recovery_s``, from ``SANDBOX_RECOVERY_S``, default 0) asks
again every half second until the value is steady or that long has passed: ``0`` judges the target the
moment the method ends (nobody repairs the sandbox: the experiment deviates); a responder watching the
target gets that long to repair it before the hypothesis is judged."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

POLL_S = 0.5
T = TypeVar("T")


def health_status(url: str, within_s: float | str = 0.0, timeout: float | str = 10.0) -> str:
    """The ``status`` the target's health route (``url``: ``…/api/v1/health``) answers: ``healthy``,
    ``degraded`` or ``unhealthy``; ``unreachable``, ``http <code>`` or ``no status`` when it cannot say."""
    return _until(lambda: _health(url, float(timeout)), lambda s: s == "healthy", float(within_s))


def p95_latency_ms(
    url: str, at_most_ms: float | str = 300.0, within_s: float | str = 0.0, timeout: float | str = 10.0
) -> float:
    """The 95th percentile of the orders' latency over the target's metrics window (``url``:
    ``…/api/v1/metrics``), or -1 when it cannot be read. ``at_most_ms`` is only when to stop waiting
    (``within_s``): give it the upper bound of the probe's tolerance."""
    bound = float(at_most_ms)
    return _until(lambda: _p95(url, float(timeout)), lambda v: 0 <= v <= bound, float(within_s))


def _until(read: Callable[[], T], steady: Callable[[T], bool], within_s: float) -> T:
    deadline = time.monotonic() + max(0.0, within_s)
    value = read()
    while not steady(value) and time.monotonic() + POLL_S <= deadline:
        time.sleep(POLL_S)
        value = read()
    return value


def _health(url: str, timeout: float) -> str:
    try:
        r = httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return "unreachable"
    if r.status_code != 200:
        return f"http {r.status_code}"
    try:
        status = r.json().get("status")
    except (ValueError, AttributeError):
        return "no status"
    return status if isinstance(status, str) else "no status"


def _p95(url: str, timeout: float) -> float:
    try:
        r = httpx.get(url, timeout=timeout)
        r.raise_for_status()
        return float(r.json()["latency_p95_ms"])
    except (httpx.HTTPError, ValueError, TypeError, KeyError):
        return -1.0
