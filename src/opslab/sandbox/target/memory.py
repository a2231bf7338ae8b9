"""The target's memory: its real resident set (``/proc/self/statm``) and a real leak.

The leak allocates ``bytearray`` blocks and writes one byte per page, so the kernel backs every page and
the resident set really grows; the blocks stay referenced here until the process ends (only a restart
frees them, as with a real leak)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

MB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
STATM = Path("/proc/self/statm")


def rss_bytes() -> int:
    """This process's resident set size in bytes (0 where ``/proc`` is not available)."""
    try:
        return int(STATM.read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class MemoryLeak:
    """Leaks ``mb_per_s`` megabytes a second on a thread of its own while enabled."""

    TICK_S = 0.1

    def __init__(self) -> None:
        self._blocks: list[bytearray] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.mb_per_s = 40.0

    @property
    def enabled(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def leaked_mb(self) -> float:
        with self._lock:
            return sum(len(b) for b in self._blocks) / MB

    def set(self, *, enabled: bool, mb_per_s: float) -> None:
        self.mb_per_s = mb_per_s
        if enabled and not self.enabled:
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="memory-leak", daemon=True
            )
            self._thread.start()
        elif not enabled and self._thread is not None:
            self._stop.set()
            self._thread.join(2)
            self._thread = None

    def _run(self, stop: threading.Event) -> None:
        next_tick = time.monotonic()
        while not stop.is_set():
            size = int(self.mb_per_s * MB * self.TICK_S)
            block = bytearray(size)
            block[::PAGE] = b"\x01" * len(range(0, size, PAGE))  # touch every page: resident, not reserved
            with self._lock:
                self._blocks.append(block)
            next_tick += self.TICK_S
            stop.wait(max(0.0, next_tick - time.monotonic()))
