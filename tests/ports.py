"""Ports for the servers a test starts, above all in child processes that bind them seconds later.

``opslab.serving.free_port`` asks the kernel for a free port and lets it go: the kernel may hand the same
number to any other socket meanwhile (another test's server, or the local end of an outgoing connection),
and a child that binds it a few seconds later then fails or, worse, a health check is answered by somebody
else. Here each pytest worker takes its ports from its own slice below the kernel's ephemeral range, which
the kernel never hands out by itself, so only this worker can have bound one of them."""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
from pathlib import Path

from opslab.serving import free_port as kernel_port

BASE, SPAN, SLICES = 20_000, 600, 20  # 20,000–31,999: below Linux's default ephemeral range (32,768–60,999)

_lock = threading.Lock()
# A random start: two suites running at once on one machine do not walk the same ports in step.
_turn = itertools.count(random.randrange(SPAN))


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _slice() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return int(worker) % SLICES if worker.isdigit() else 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port no socket holds now, from this worker's slice (the kernel's choice where the slices would
    overlap the ephemeral range)."""
    if _ephemeral_low() < BASE + SPAN * SLICES:
        return kernel_port(host)
    low = BASE + _slice() * SPAN
    with _lock:
        for _ in range(SPAN):
            port = low + next(_turn) % SPAN
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            return port
    return kernel_port(host)
