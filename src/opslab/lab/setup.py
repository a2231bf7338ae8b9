"""``run-dev --setup CMD``: a command run once, in the run's container with full network, before the
trials (``npm ci``, ``pip install -r requirements.txt --target deps``).

It runs in a copy of the project, ``RUN_DIR/setup/workspace``; every trial's workspace is then copied from
that folder (installed dependencies included) instead of the project, which the setup never touches.
The command is split like a shell would split it, but no shell runs it: for pipes or ``&&``, point it at
a script. A failing setup refuses the run and removes it: no trial ran.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from opslab import proc
from opslab.errors import InvalidInput, OperationFailed
from opslab.lab.config import Resolved
from opslab.lab.harness import trial_env
from opslab.lab.isolation import IsolationPlan
from opslab.lab.secrets import scrubber, secret_values
from opslab.lab.trial import left_out
from opslab.lab.workspace import Template

SETUP_TIMEOUT_S = 1800.0


def setup_workspace(run_dir: Path) -> Path:
    return run_dir / "setup" / "workspace"


def run_setup(
    resolved: Resolved, run_dir: Path, plan: IsolationPlan, command: str, *, env_base: dict[str, str]
) -> None:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidInput.for_field("--setup", f"cannot split {command!r}: {exc}") from None
    if not argv:
        raise InvalidInput.for_field("--setup", "empty command")
    base, ws = run_dir / "setup", setup_workspace(run_dir)
    out = base / "out"
    out.mkdir(parents=True)
    Template.scan(resolved.project_root, exclude=left_out(resolved, plan)).materialize(str(ws))
    cfg = resolved.config
    secrets = secret_values(cfg.runtime.env_allow, env_base)
    env = trial_env(cfg.design.sanitization_profile, env_base, str(base), dict(secrets))
    launch = plan.launch(argv, ws=str(ws), out_dir=str(out), env=env, trial_id="setup")
    try:
        res = proc.run(
            launch.argv,
            timeout_s=SETUP_TIMEOUT_S,
            cwd=launch.cwd,
            env=launch.env,
            stdout=str(out / "stdout.log"),
            stderr=str(out / "stderr.log"),
            pre_exec=launch.pre_exec,
            pass_fds=launch.pass_fds,
            started=launch.started,
        )
    finally:
        launch.close()
    scrubber(secrets).tree(str(base))
    if not res.ok:
        why = res.start_error or ("timed out" if res.timed_out else f"exit code {res.returncode}")
        tail = (
            (out / "stderr.log").read_text(errors="replace")[-2000:] if (out / "stderr.log").exists() else ""
        )
        shutil.rmtree(run_dir, ignore_errors=True)
        raise OperationFailed(
            f"the setup command {command!r} failed ({why}); the run was not started",
            details={"field": "--setup", "stderr_tail": tail},
        )
