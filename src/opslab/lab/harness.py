"""Running the user's harness for one trial: argv (never a shell), sanitized environment, process-group
timeout (through ``opslab.proc``), output validated against the harness protocol's JSON Schema. Every
failure is a value."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import fastjsonschema

from opslab import proc
from opslab.lab.records import OUTCOMES, Outcome

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["outcome"],
    "properties": {
        "schema_version": {"type": "integer"},
        "outcome": {"enum": list(OUTCOMES)},
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
    outcome: Outcome
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
    # One private folder is both home and temporary folder (as a container's /tmp is): a trial's folders
    # are most of what it costs the runner, a directory each.
    home = os.path.join(trial_dir, "home")
    with contextlib.suppress(FileExistsError):
        os.mkdir(home)
    env = {k: base[k] for k in ENV_ALLOWLIST if k in base}
    env.update(
        HOME=home,
        TMPDIR=home,
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
    tie_to_parent: bool = False,
    pre_exec: Callable[[], None] | None = None,
    pass_fds: Sequence[int] = (),
    started: Callable[[int], None] | None = None,
) -> HarnessResult:
    res = proc.run(
        argv,
        timeout_s=timeout_s,
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=stderr,
        tie_to_parent=tie_to_parent,
        pre_exec=pre_exec,
        pass_fds=pass_fds,
        started=started,
    )
    duration = res.duration_s * 1000
    if res.start_error:
        return HarnessResult("error", {}, None, 0.0, f"harness: {res.start_error}")
    if res.timed_out:
        return HarnessResult(
            "error", {}, None, duration, f"timeout: no exit within {timeout_s:g} s (process group killed)"
        )
    code = res.returncode
    if code != 0:
        return HarnessResult("error", {}, code, duration, f"harness exited with code {code}")
    try:
        raw = _read_output(output_path)
    except _TooBig:
        return HarnessResult(
            "error", {}, code, duration, f"trial_output.json is over {MAX_OUTPUT_BYTES} bytes"
        )
    except OSError:
        raw = None
    if raw is None:
        return HarnessResult("error", {}, code, duration, "harness wrote no trial_output.json")
    try:
        output = json.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError
        return HarnessResult("error", {}, code, duration, f"trial_output.json is not JSON: {exc}")
    problem = output_problem(output, trainer=trainer)
    if problem:
        return HarnessResult("error", {}, code, duration, f"trial_output.json invalid at {problem}")
    return HarnessResult(output["outcome"], output, code, duration, None)  # schema-checked


class _TooBig(Exception):
    pass


def _read_output(path: StrPath) -> bytes | None:
    """The harness's output file, or None when it is not a regular file (never a FIFO it left to block
    the runner: opened without blocking, checked before it is read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > MAX_OUTPUT_BYTES:
            raise _TooBig
        chunks = []
        while chunk := os.read(fd, max(st.st_size, 1 << 16)):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=64)
def resolve_program(program: str, path: str) -> str:
    """argv[0] resolved against PATH once per run, not by every exec."""
    if os.sep in program:
        return program
    return shutil.which(program, path=path) or program
