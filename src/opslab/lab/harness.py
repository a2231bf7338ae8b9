"""Running the user's harness for one trial: argv (never a shell), sanitized environment, process-group
timeout, output validated against the harness protocol's JSON Schema. Every failure is a value."""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastjsonschema

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["outcome"],
    "properties": {
        "schema_version": {"type": "integer"},
        "outcome": {"enum": ["success", "failure", "error", "timeout", "skipped"]},
        "metrics": {"type": "object", "additionalProperties": {"type": ["number", "boolean", "null"]}},
        "result": {},
        "error": {"type": ["string", "object", "null"]},
        "objective": {
            "type": "object",
            "required": ["name", "value", "direction"],
            "properties": {
                "name": {"type": "string"},
                "value": {"type": "number"},
                "direction": {"enum": ["minimize", "maximize"]},
            },
        },
        "train_loss": {"type": ["number", "null"]},
        "val_acc": {"type": ["number", "null"]},
        "wall_time_s": {"type": ["number", "null"]},
        "checkpoints": {"type": "array"},
    },
}
TRAINER_REQUIRED = ["objective"]
MAX_OUTPUT_BYTES = 50 * 1024 * 1024
# hermetic_functional_v2: only these pass through from the runner's environment.
ENV_ALLOWLIST = ("PATH", "LANG", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT", "PYTHONHASHSEED")


@functools.cache
def _validator() -> Callable[[Any], Any]:
    # Compiled to Python once: ~20x faster per trial than a generic validator walking the schema.
    return fastjsonschema.compile(OUTPUT_SCHEMA)


def output_problem(output: Any, *, trainer: bool) -> str | None:
    """Where and how ``output`` breaks the harness protocol (``"metrics/a: must be number…"``), or None."""
    try:
        _validator()(output)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = "/".join(str(p) for p in exc.path[1:]) or "(root)"
        name = exc.name if isinstance(exc.name, str) else "data"
        return f"{where}: {exc.message.removeprefix(name).strip()}"
    if trainer:
        missing = [k for k in TRAINER_REQUIRED if k not in output]
        if missing:
            return f"(root): trainer output needs {missing}"
    return None


@dataclass
class HarnessResult:
    outcome: str
    output: dict[str, Any]
    exit_code: int | None
    duration_ms: float
    error: str | None


StrPath = str | os.PathLike[str]


def build_argv(command: list[str], input_path: StrPath, output_path: StrPath) -> list[str]:
    placeholders = any("{input}" in a or "{output}" in a for a in command)
    argv = [a.replace("{input}", str(input_path)).replace("{output}", str(output_path)) for a in command]
    return argv if placeholders else [*argv, "--input", str(input_path), "--output", str(output_path)]


def trial_env(
    profile: str, base: dict[str, str], trial_dir: StrPath, extra: dict[str, str]
) -> dict[str, str]:
    if profile == "passthrough":
        return {**base, **extra}
    home, tmp = os.path.join(trial_dir, "home"), os.path.join(trial_dir, "tmp")
    for d in (home, tmp):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d)
    env = {k: base[k] for k in ENV_ALLOWLIST if k in base}
    env.update(
        HOME=home,
        TMPDIR=tmp,
        TZ="UTC",
        LC_ALL="C.UTF-8",
        LANG="C.UTF-8",
        PYTHONDONTWRITEBYTECODE="1",
        **extra,
    )
    return env


def run_harness(
    *,
    argv: list[str],
    cwd: StrPath,
    env: dict[str, str],
    timeout_s: float,
    stdout: StrPath,
    stderr: StrPath,
    output_path: StrPath,
    trainer: bool,
) -> HarnessResult:
    start = time.perf_counter()
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            return HarnessResult("error", {}, None, 0.0, f"could not start harness {argv[0]!r}: {exc}")
        # One shared watchdog kills the group at the deadline while wait() blocks in waitpid:
        # Popen.wait(timeout) would poll with sleeps, and a timer thread per trial costs a millisecond.
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            _kill_group(proc)

        ticket = WATCHDOG.arm(timeout_s, expire)
        try:
            code = proc.wait()
        finally:
            WATCHDOG.disarm(ticket)
        if timed_out.is_set():
            return HarnessResult(
                "error",
                {},
                None,
                (time.perf_counter() - start) * 1000,
                f"timeout: no exit within {timeout_s:g} s (process group killed)",
            )
    duration = (time.perf_counter() - start) * 1000
    if code != 0:
        return HarnessResult("error", {}, code, duration, f"harness exited with code {code}")
    try:
        st = os.stat(output_path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        return HarnessResult("error", {}, code, duration, "harness wrote no trial_output.json")
    if st.st_size > MAX_OUTPUT_BYTES:
        return HarnessResult(
            "error", {}, code, duration, f"trial_output.json is over {MAX_OUTPUT_BYTES} bytes"
        )
    try:
        with open(output_path, "rb") as f:
            output = json.loads(f.read())
    except ValueError as exc:  # includes UnicodeDecodeError
        return HarnessResult("error", {}, code, duration, f"trial_output.json is not JSON: {exc}")
    problem = output_problem(output, trainer=trainer)
    if problem:
        return HarnessResult("error", {}, code, duration, f"trial_output.json invalid at {problem}")
    return HarnessResult(str(output["outcome"]), output, code, duration, None)


class Watchdog:
    """A single thread that runs callbacks at their deadlines (for thousands of short trials)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, callback: Callable[[], None]) -> int:
        ticket = next(self._seq)
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + seconds, ticket, callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="opslab-lab-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return ticket

    def disarm(self, ticket: int) -> None:
        with self._cond:
            self._cancelled.add(ticket)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, ticket, callback = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            callback()


WATCHDOG = Watchdog()


def _fresh_watchdog_after_fork() -> None:
    # A forked worker inherits the watchdog object but not its thread: give it its own.
    global WATCHDOG
    WATCHDOG = Watchdog()


os.register_at_fork(after_in_child=_fresh_watchdog_after_fork)


@functools.lru_cache(maxsize=64)
def resolve_program(program: str, path: str) -> str:
    """argv[0] resolved against PATH once per run, not by every exec."""
    if os.sep in program:
        return program
    return shutil.which(program, path=path) or program


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(2)
            return
        except subprocess.TimeoutExpired:
            continue
