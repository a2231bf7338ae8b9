"""An OCI engine's ``run`` for one trial (podman or docker): the image with the workspace at ``/workspace``
and the I/O at ``/out``, no capabilities, ``no-new-privileges``, a pids limit, and the environment passed
by name (``-e NAME``), so a value never appears on a command line."""

from __future__ import annotations

import os
from dataclasses import dataclass

from opslab.lab.isolation.limits import TrialLimits

WORKSPACE, OUT, CONTROL_DIR = "/workspace", "/out", "/run/opslab-control"


@dataclass(frozen=True)
class Options:
    network: str  # none | full (allowlist_enforced is refused for engines)
    control_dir: str | None = None  # the folder holding the run's live control file
    pids_limit: int = 1024
    limits: TrialLimits = TrialLimits()


def argv(
    engine: str, image: str, command: list[str], ws: str, out_dir: str, env: dict[str, str], opts: Options
) -> tuple[list[str], dict[str, str]]:
    """The engine's argv and the environment to start it with."""
    network = "none" if opts.network == "none" else "host"
    args = [engine, "run", "--rm", "--network", network, "--workdir", WORKSPACE]
    args += ["-v", f"{ws}:{WORKSPACE}", "-v", f"{out_dir}:{OUT}"]
    if opts.control_dir:
        args += ["-v", f"{opts.control_dir}:{CONTROL_DIR}:ro"]
    args += ["--cap-drop=ALL", "--security-opt=no-new-privileges", f"--pids-limit={opts.pids_limit}"]
    if opts.limits.memory_bytes:
        args.append(f"--memory={opts.limits.memory_bytes}")
    if opts.limits.cpu_s is not None:
        args.append(f"--ulimit=cpu={max(1, round(opts.limits.cpu_s))}")
    if opts.limits.file_bytes:
        args.append(f"--ulimit=fsize={opts.limits.file_bytes}")
    if opts.limits.tmp_bytes:
        args.append(f"--tmpfs=/tmp:size={opts.limits.tmp_bytes}")
    passed = {k: v for k, v in env.items() if k not in ("PATH", "HOME", "TMPDIR")}
    for name in sorted(passed):
        args += ["-e", name]  # the value travels in the engine's environment, never on a command line
    host_env = {"PATH": env.get("PATH", os.defpath), **passed}
    return [*args, image, *command], host_env
