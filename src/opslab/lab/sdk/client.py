"""``LabClient``: the ``opslab lab`` commands from Python, each run as ``opslab lab <cmd> … --json``.

The seed's client drives a runner binary and parses its JSON; this one does the same with the opslab
CLI, so a script gets exactly what a terminal gets — the same validation, isolation, artifacts and
errors — and the runner can be another installation (a container's, a pinned version's). Each method
takes the seed's options as keyword arguments, maps them to the command's flags, and returns the
envelope as a typed model (``results``); a command that fails raises ``LabRunnerError``.

The runner: ``runner_bin``, else ``OPSLAB_RUNNER_BIN`` (or the seed's ``AGENTLAB_RUNNER_BIN``), else the
``opslab`` beside the running Python (this installation's), else ``opslab`` on ``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, JsonValue, ValidationError

from opslab import proc
from opslab.config import Settings, process_environment
from opslab.lab.sdk.errors import LabRunnerError, error_of, parse_object
from opslab.lab.sdk.results import (
    DescribeResult,
    ForkResult,
    HooksValidation,
    KnobsValidation,
    PauseResult,
    PublishResult,
    ReplayResult,
    ResumeResult,
    RunResult,
    SchemaValidation,
    read_comparison,
)

# proc.run demands a deadline; a lab run may take hours, a hung runner should still end one day.
DEFAULT_TIMEOUT_S = 24 * 3600.0
EXPERIMENT = ".lab/experiment.yaml"
R = TypeVar("R", bound=BaseModel)
StrPath = str | os.PathLike[str]


def find_runner(runner_bin: StrPath | None = None, settings: Settings | None = None) -> str:
    """The ``opslab`` executable to run (see the module docstring); ``LabRunnerError`` when none is found."""
    if runner_bin is not None:
        return str(runner_bin)
    configured = (settings or Settings.load()).runner_bin
    if configured:
        return configured
    beside = Path(sys.executable).parent / "opslab"
    if beside.is_file():
        return str(beside)
    on_path = shutil.which("opslab")
    if on_path:
        return on_path
    raise LabRunnerError(
        "runner_not_found",
        "no opslab executable: pass runner_bin, set OPSLAB_RUNNER_BIN, or install opslab on PATH",
    )


class LabClient:
    """Runs ``opslab lab`` commands in ``cwd`` (default: the current directory) with ``env`` added to
    this process's environment, each within ``timeout`` seconds (default: a day)."""

    def __init__(
        self,
        runner_bin: StrPath | None = None,
        cwd: StrPath | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        self.runner_bin = find_runner(runner_bin, settings)
        self.cwd = Path(cwd) if cwd is not None else None
        self.env = dict(env) if env is not None else None
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT_S

    # --- planning and running ---
    def describe(
        self, experiment: StrPath = EXPERIMENT, *, overrides: StrPath | None = None, container: bool = False
    ) -> DescribeResult:
        """Dry run: the resolved experiment, its trial plan and its isolation (checked), nothing executed."""
        args = [str(experiment), *opt("--overrides", overrides), *bool_flag("--container", container)]
        return self._call("describe", args, DescribeResult)

    def run(
        self,
        experiment: StrPath = EXPERIMENT,
        *,
        concurrency: int | None = None,
        overrides: StrPath | None = None,
        resume: str | None = None,
        retry_errors: bool = False,
        container: bool = False,
        report_to: str | None = None,
        executor: Literal["local", "rq"] = "local",
    ) -> RunResult:
        """Every trial locally with the configured network (``container``: in ``runtime.sandbox.image``);
        ``executor="rq"``: on `opslab worker` processes (the environment's ``OPSLAB_REDIS_URL``)."""
        args = [
            *bool_flag("--retry-errors", retry_errors),
            *bool_flag("--container", container),
            *opt("--executor", None if executor == "local" else executor),
        ]
        return self._run("run", experiment, concurrency, overrides, resume, report_to, args)

    def run_dev(
        self,
        experiment: StrPath = EXPERIMENT,
        *,
        setup: str | None = None,
        concurrency: int | None = None,
        overrides: StrPath | None = None,
        resume: str | None = None,
        report_to: str | None = None,
    ) -> RunResult:
        """Iterate: network forced to full, trials in the container, ``setup`` run there first."""
        return self._run(
            "run-dev", experiment, concurrency, overrides, resume, report_to, opt("--setup", setup)
        )

    def run_experiment(
        self,
        experiment: StrPath = EXPERIMENT,
        *,
        concurrency: int | None = None,
        overrides: StrPath | None = None,
        resume: str | None = None,
        report_to: str | None = None,
    ) -> RunResult:
        """Strict: network mode must be ``none``, trials in the container."""
        return self._run("run-experiment", experiment, concurrency, overrides, resume, report_to, [])

    # --- controlling runs ---
    def replay(self, *, run_dir: StrPath, trial_id: str, ignore: Sequence[str] = ()) -> ReplayResult:
        """Re-execute a trial from its artifacts and compare outcome, metrics and result."""
        args = ["--run-dir", str(run_dir), "--trial-id", trial_id, *repeated("--ignore", ignore)]
        return self._call("replay", args, ReplayResult)

    def fork(
        self,
        *,
        run_dir: StrPath,
        from_trial: str,
        at: str | int,
        bindings: Mapping[str, JsonValue] | None = None,
    ) -> ForkResult:
        """A new trial from a checkpoint of ``from_trial`` (``at``: a label, ``last`` or an index), its
        ``bindings`` overridden (each one a ``--set``; ``{"model.temperature": 0.2}``: dotted keys nest)."""
        args = ["--run-dir", str(run_dir), "--from-trial", from_trial, "--at", str(at), *fork_sets(bindings)]
        return self._call("fork", args, ForkResult)

    def pause(self, *, run_dir: StrPath, reason: str | None = None) -> PauseResult:
        """No new trial starts; running trials finish."""
        return self._call("pause", ["--run-dir", str(run_dir), *opt("--reason", reason)], PauseResult)

    def stop(self, *, run_dir: StrPath, reason: str | None = None) -> PauseResult:
        """No trial starts again; running trials finish and the run ends ``stopped``."""
        return self._call("stop", ["--run-dir", str(run_dir), *opt("--reason", reason)], PauseResult)

    def resume(
        self, *, run_dir: StrPath, concurrency: int | None = None, reason: str | None = None
    ) -> ResumeResult:
        """Resume a paused run; with no runner holding it, its remaining trials run in this call."""
        args = ["--run-dir", str(run_dir), *opt("--concurrency", concurrency), *opt("--reason", reason)]
        result = self._call("resume", args, ResumeResult)
        if result.run is not None:
            result.comparison = read_comparison(self._path(result.run.run_dir))
        return result

    def publish(self, *, run_dir: StrPath, output: StrPath | None = None) -> PublishResult:
        """A debug bundle (tar.gz) of the run, secrets redacted."""
        return self._call("publish", ["--run-dir", str(run_dir), *opt("--output", output)], PublishResult)

    # --- validating ---
    def validate_knobs(
        self,
        *,
        manifest: StrPath | None = None,
        overrides: StrPath | None = None,
        experiment: StrPath | None = None,
    ) -> KnobsValidation:
        """The overrides (default ``.lab/knobs/overrides.json``) against ``manifest`` (default: the one
        the overrides name), as the seed's ``validateKnobs({manifest, overrides})``."""
        args = [
            *opt("--manifest", manifest),
            *opt("--overrides", overrides),
            *opt("--experiment", experiment),
        ]
        return self._call("knobs-validate", args, KnobsValidation)

    def validate_hooks(self, *, events: StrPath, manifest: StrPath | None = None) -> HooksValidation:
        """An event stream (``harness_events.jsonl``) against the harness manifest."""
        return self._call(
            "validate-hooks", ["--events", str(events), *opt("--manifest", manifest)], HooksValidation
        )

    def validate_schema(self, *, file: StrPath, schema: str) -> SchemaValidation:
        """A JSON, YAML or JSON Lines file against one of the lab's schemas (``trial_input`` …)."""
        return self._call("validate-schema", [str(file), "--schema", schema], SchemaValidation)

    # --- plumbing ---
    def _run(
        self,
        command: str,
        experiment: StrPath,
        concurrency: int | None,
        overrides: StrPath | None,
        resume: str | None,
        report_to: str | None,
        extra: list[str],
    ) -> RunResult:
        args = [
            str(experiment),
            *opt("--concurrency", concurrency),
            *opt("--overrides", overrides),
            *opt("--resume", resume),
            *opt("--report-to", report_to),
            *extra,
        ]
        result = self._call(command, args, RunResult)
        result.comparison = read_comparison(self._path(result.run.run_dir))
        return result

    def _path(self, path: Path) -> Path:
        return path if path.is_absolute() or self.cwd is None else self.cwd / path

    def _call(self, command: str, args: list[str], model: type[R]) -> R:
        argv = [self.runner_bin, "lab", command, *args, "--json"]
        stdout, stderr, result = self._spawn(argv)
        if result.start_error is not None:
            raise LabRunnerError("runner_not_found", result.start_error, command=argv)
        if result.timed_out:
            raise LabRunnerError(
                "runner_timeout",
                f"{command} did not finish within {self.timeout:g} s and was stopped",
                {"timeout_s": self.timeout},
                stderr=stderr[-4000:],
                command=argv,
            )
        envelope = parse_object(stdout)
        if result.returncode != 0 or envelope is None or envelope.get("ok") is False:
            raise error_of(argv, result.returncode, stdout, stderr)
        try:
            return model.model_validate(envelope)
        except ValidationError as exc:
            raise LabRunnerError(
                "invalid_output",
                f"{command}: the runner's JSON does not match {model.__name__}: {exc.errors()[0]['msg']}",
                {"errors": exc.errors(include_url=False, include_context=False)},
                result.returncode,
                stderr[-4000:],
                argv,
            ) from None

    def _spawn(self, argv: list[str]) -> tuple[str, str, proc.ProcResult]:
        env = None if self.env is None else {**process_environment(), **self.env}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            result = proc.run(
                argv,
                timeout_s=self.timeout,
                cwd=self.cwd,
                env=env,
                stdout=out,
                stderr=err,
                tie_to_parent=True,
            )
            out.seek(0)
            err.seek(0)
            return (
                out.read().decode("utf-8", errors="replace"),
                err.read().decode("utf-8", errors="replace"),
                result,
            )


# Options to flags, as `opslab lab` parses them: an option left at None is no flag.


def opt(flag: str, value: StrPath | int | None) -> list[str]:
    """``--flag VALUE``, or nothing for None."""
    return [] if value is None else [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]


def bool_flag(flag: str, on: bool) -> list[str]:
    return [flag] if on else []


def repeated(flag: str, values: Sequence[str]) -> list[str]:
    """``--flag A --flag B`` (Typer's list options)."""
    return [part for value in values for part in (flag, value)]


def fork_sets(bindings: Mapping[str, JsonValue] | None) -> list[str]:
    """``--set key=<JSON>`` per binding: the CLI parses the value as JSON, so a string that looks like a
    number stays a string."""
    return repeated("--set", [f"{key}={json.dumps(value)}" for key, value in (bindings or {}).items()])
