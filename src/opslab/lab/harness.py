"""Running the user's harness for one trial: argv (never a shell), sanitized environment, process-group
timeout (through ``opslab.proc``), output validated against the harness protocol's JSON Schema. Every
failure is a value."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import fastjsonschema

from opslab import proc
from opslab.capped_log import CappedLog
from opslab.lab.records import OUTCOMES, Outcome
from opslab.lab.untrusted import read_beneath

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
MAX_OUTPUT_BYTES = 64 * 1024 * 1024
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
    stdout: StrPath | CappedLog,
    stderr: StrPath | CappedLog,
    output_path: StrPath,
    trainer: bool,
    tie_to_parent: bool = False,
    pre_exec: Callable[[], None] | None = None,
    pass_fds: Sequence[int] = (),
    started: Callable[[int], None] | None = None,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
    remote: Callable[[int, int], proc.Remote] | None = None,
) -> HarnessResult:
    """Run the harness (``remote``: started by a sandbox's zygote, see ``isolation.zygote``); its output
    file is read as untrusted data (``untrusted``), at most ``max_output_bytes`` of it."""
    if remote is not None:
        assert isinstance(stdout, CappedLog) and isinstance(stderr, CappedLog)
        res = proc.run_remote(
            argv[0], remote, timeout_s=timeout_s, stdout=stdout, stderr=stderr, started=started
        )
    else:
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
    folder, name = os.path.split(os.fspath(output_path))
    taken = read_beneath(folder, name, limit=max_output_bytes)
    if taken.refused is not None:
        return HarnessResult("error", {}, code, duration, taken.refused)
    if taken.cut:
        return HarnessResult(
            "error", {}, code, duration, f"{name} is over {max_output_bytes} bytes ({taken.size}): not read"
        )
    if taken.data is None:
        return HarnessResult("error", {}, code, duration, f"harness wrote no {name}")
    try:
        output = json.loads(taken.data)
    except ValueError as exc:  # includes UnicodeDecodeError
        return HarnessResult("error", {}, code, duration, f"{name} is not JSON: {exc}")
    problem = output_problem(output, trainer=trainer)
    if problem:
        return HarnessResult("error", {}, code, duration, f"{name} invalid at {problem}")
    return HarnessResult(output["outcome"], output, code, duration, None)  # schema-checked


@functools.lru_cache(maxsize=64)
def resolve_program(program: str, path: str) -> str:
    """argv[0] resolved against PATH once per run, not by every exec."""
    if os.sep in program:
        return program
    return shutil.which(program, path=path) or program
