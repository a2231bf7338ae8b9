"""How `opslab canary run` shows a run and stops it: a Rich progress bar per window on a terminal (elapsed,
requests sent, the arm's live p95), one line per state change otherwise; SIGINT and SIGTERM ask the run to
stop, and a second signal only warns while the baseline flags are being restored."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from opslab.canary import LiveWindow, Stop

T = TypeVar("T")
STOPPING = (
    "interrupted ({signal}): stopping the window, restoring the baseline flags, writing a partial report…"
)
AGAIN = "still restoring the baseline flags: the run exits once they are back (another Ctrl-C does nothing)"


class RunDisplay:
    """The run as a user watches it. ``step`` is the agent's progress callback (any thread); ``watch``
    receives each window as it starts; ``refresh`` (the main thread) redraws the bars."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self.console = console
        self.enabled = enabled
        self.live = enabled and console.is_terminal
        self.last = ""
        self.lock = threading.Lock()
        self.windows: list[LiveWindow] = []
        self.tasks: dict[int, TaskID] = {}
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn(
                "sent {task.fields[sent]:>6}  errors {task.fields[errors]:>4}  p95 {task.fields[p95]}"
            ),
            console=console,
            disable=not self.live,
        )

    def step(self, step: str, pct: float, message: str) -> None:
        line = f"[{pct:3.0f}%] {step}: {message}"
        with self.lock:
            if not self.enabled or message == self.last:
                return  # one line per state change, not one per poll
            self.last = message
        self.bars.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def watch(self, window: LiveWindow) -> None:
        with self.lock:
            self.windows.append(window)

    def refresh(self) -> None:
        if not self.live:
            return
        with self.lock:
            windows = list(self.windows)
        for n, w in enumerate(windows):
            if n not in self.tasks:
                name = "warm-up" if w.arm == "warmup" else f"round {w.index // 2 + 1} arm {w.arm}"
                self.tasks[n] = self.bars.add_task(name, total=w.seconds, sent=0, errors=0, p95="—")
            p95 = w.p95_ms()
            elapsed = min(w.seconds, time.monotonic() - w.started)
            self.bars.update(
                self.tasks[n],
                completed=elapsed if n == len(windows) - 1 else w.seconds,
                sent=w.sent,
                errors=w.errors,
                p95="—" if p95 is None else f"{p95:.1f} ms",
            )

    def __enter__(self) -> RunDisplay:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self.bars.__exit__(None, None, None)


@contextmanager
def stop_on_signals(stop: Stop, say: Callable[[str], None]) -> Iterator[list[int]]:
    """SIGINT and SIGTERM stop the run (the first one; later ones warn). Yields the signals received."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            say(STOPPING.format(signal=name))
            stop.stop(name)
        else:
            say(AGAIN)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            # Once stopped, the run only reports and exits: a late Ctrl-C must not cut that short.
            signal.signal(s, signal.SIG_IGN if received else h)


def run_in_thread(work: Callable[[], T], tick: Callable[[], None], *, every: float = 0.1) -> T:
    """``work`` on a thread (signal handlers run on the main thread, which keeps ``tick``-ing)."""
    done: list[T] = []
    failed: list[BaseException] = []

    def body() -> None:
        try:
            done.append(work())
        except BaseException as exc:  # re-raised on the main thread
            failed.append(exc)

    thread = threading.Thread(target=body, name="canary")
    thread.start()
    while thread.is_alive():
        thread.join(every)
        tick()
    if failed:
        raise failed[0]
    return done[0]


def echo_unwrapped(text: str) -> None:
    """The summary as written: a terminal must not wrap the rollback command inside its JSON."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
