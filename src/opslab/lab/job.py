"""A lab run started from the API, as typed work: ``LabPayload`` (the experiment file, or an inline
experiment to write there; the executor; the concurrency) -> the ``LabRun`` (the same JSON
``opslab lab run --json`` reports, with its variants).

``new_lab_job`` checks a request before anything is written: the paths must lie under the service's
allowed roots (none by default: the API runs no experiment until ``OPSLAB_LAB_ALLOWED_ROOTS`` is set), the
experiment must resolve. The run goes where every run of that project goes, ``<project>/.lab/runs``.
Progress: trials done / total and each variant's pass rate so far."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import yaml
from pydantic import JsonValue

from opslab.errors import InvalidInput, OperationFailed, PolicyViolation
from opslab.jobs import Cancelled, NewJob, Work, WorkContext, WorkDeps
from opslab.lab.artifacts import write_text
from opslab.lab.config import Resolved, parse_config, project_root_of, read_yaml, resolve
from opslab.lab.control import RunInterrupted, RunStop
from opslab.lab.plan import expand_trials
from opslab.lab.session import LabRun
from opslab.lab.views import LAB, LabPayload, LabRunIn

if TYPE_CHECKING:
    from opslab.lab.queued_pool import TrialQueue
    from opslab.lab.runner import LabProgress

KIND = LAB.kind
DONE_STEP = LAB.done_step
RUNNING_STEP = "Running trials"
REPORT_EVERY_S = 0.5  # progress is persisted and published: at most this often, and at the end
RELAY_S = 0.2  # how soon a job's cancel (its heartbeat saw it) becomes the run's stop
ROOTS_SETTING = "OPSLAB_LAB_ALLOWED_ROOTS"
MAX_PATH_BYTES, MAX_NAME_BYTES = 4095, 255  # Linux's PATH_MAX (less the NUL) and NAME_MAX


class LabDeps(WorkDeps, Protocol):
    def environment(self) -> Mapping[str, str]:
        """The environment trials start from (the sanitization profile then filters it)."""
        ...

    def trial_queue(self) -> TrialQueue:
        """The task queue `opslab worker` processes serve (``Unavailable`` without one)."""
        ...

    def index_lab_run(self, run_dir: Path) -> None:
        """Keep the finished run where every replica reads it (``archive``)."""
        ...


def new_lab_job(
    body: LabRunIn, *, allowed_roots: Sequence[Path], workers: bool, idempotency_key: str | None = None
) -> NewJob:
    """The job for ``body``, or the 4xx naming what is wrong (``workers``: the service has Redis)."""
    if not allowed_roots:
        raise PolicyViolation(
            f"the service runs no experiment until {ROOTS_SETTING} lists the folders it may run from",
            details={"field": ROOTS_SETTING},
        )
    if (body.experiment_path is None) == (body.experiment is None):
        raise InvalidInput.for_field("experiment_path", "give either experiment_path or experiment")
    if body.executor == "rq" and not workers:
        raise InvalidInput.for_field("executor", "rq needs the service's OPSLAB_REDIS_URL (and workers)")
    inline: dict[str, JsonValue] | None = None
    if body.experiment_path is not None:
        path = _allowed(body.experiment_path, "experiment_path", allowed_roots)
        if not _is(path, "file"):
            raise InvalidInput.for_field("experiment_path", f"no experiment file at {path}")
        data = read_yaml(path)
    else:
        if body.project_path is None:
            raise InvalidInput.for_field("project_path", "an inline experiment needs the project it runs in")
        project = _allowed(body.project_path, "project_path", allowed_roots)
        if not _is(project, "dir"):
            raise InvalidInput.for_field("project_path", f"no folder at {project}")
        path = project / ".lab" / f"api-{uuid.uuid4().hex[:12]}.yaml"  # written by the job, once it runs
        data = inline = body.experiment
    # Where it reaches is checked before anything there is read (the dataset).
    dataset = str(path.parent / parse_config(data).dataset.path)
    for field, where in (("project_path", str(project_root_of(path))), ("dataset.path", dataset)):
        _allowed(where, field, allowed_roots)
    resolved = resolve(path, data)
    payload = LabPayload(
        experiment_path=str(path), experiment=inline, executor=body.executor, concurrency=body.concurrency
    )
    # One attempt: a second would start a second run (`opslab lab run --resume` continues one).
    return LAB.new(payload, subject=str(resolved.project_root), idempotency_key=idempotency_key)


def _allowed(value: str, field: str, roots: Sequence[Path]) -> Path:
    """``value`` resolved (symbolic links and ``..``) when it names a place under the roots; a path the
    file system cannot even look up (a NUL byte, a name past its limits, a link loop) is a 422 too."""
    shown = value if len(value) <= 120 else value[:117] + "..."
    if "\0" in value:
        raise InvalidInput.for_field(field, "a path cannot hold a NUL byte")
    if len(os.fsencode(value)) > MAX_PATH_BYTES or any(
        len(os.fsencode(part)) > MAX_NAME_BYTES for part in value.split("/")
    ):
        raise InvalidInput.for_field(
            field,
            f"{shown!r} is too long (a name holds at most {MAX_NAME_BYTES} bytes, a path {MAX_PATH_BYTES})",
        )
    path = Path(value)
    if not path.is_absolute():
        raise InvalidInput.for_field(field, f"an absolute path on the service's machine, got {shown!r}")
    try:
        real = path.resolve()
        os.lstat(real)  # what the file system says of the resolved path (too long, a loop…)
    except FileNotFoundError:
        pass  # not there: said by the caller, naming what it expected
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop (Python < 3.13)
        loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
        why = "a symbolic link loop" if loop else getattr(exc, "strerror", None) or str(exc)
        raise InvalidInput.for_field(field, f"{shown!r} cannot be resolved: {why}") from None
    if not any(real.is_relative_to(root.resolve()) for root in roots):
        raise PolicyViolation(
            f"{field}: {real} is not under {ROOTS_SETTING}",
            details={"field": field, "setting": ROOTS_SETTING},
        )
    return real


def _is(path: Path, kind: str) -> bool:
    try:
        return path.is_file() if kind == "file" else path.is_dir()
    except OSError:
        return False


def lab_work(deps: LabDeps) -> Work[LabPayload, LabRun]:
    def run(payload: LabPayload, ctx: WorkContext) -> LabRun:
        from opslab.lab.session import run_experiment  # the runner: loaded where a lab run runs

        path = Path(payload.experiment_path)
        if payload.experiment is not None and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, yaml.safe_dump(payload.experiment, sort_keys=False).rstrip("\n"))
        queue = deps.trial_queue() if payload.executor == "rq" else None
        meter = PassRates.of(resolve(path), ctx.report)
        with RunStop() as stop, _relayed(ctx, stop):
            try:
                lab_run = run_experiment(
                    path,
                    concurrency=payload.concurrency,
                    env_base=dict(deps.environment()),
                    progress=meter,
                    queue=queue,
                    stop=stop,
                )
            except RunInterrupted as exc:
                # A KeyboardInterrupt must not leave the work: the job ends cancelled (asked) or, when the
                # service is shutting down, failed with the way to continue.
                where = f"{meter.done}/{meter.total} trials finished and kept"
                if ctx.cancelled.is_set():
                    raise Cancelled(f"cancelled: {where}; {exc.message}") from None
                raise OperationFailed(f"{where}; {exc.message}", details=exc.to_dict()["details"]) from None
        ctx.report("Analysed", 99, meter.summary(final=True))
        deps.index_lab_run(lab_run.run_dir)
        return lab_run

    return LAB.bind(run)


@contextlib.contextmanager
def _relayed(ctx: WorkContext, stop: RunStop) -> Iterator[None]:
    """While the run runs, a cancel of its job (or the service stopping) sets the run's stop."""
    done = threading.Event()

    def relay() -> None:
        while not done.wait(RELAY_S):
            if ctx.cancelled.is_set():
                stop.set("a cancel (POST /lab/runs/{id}/cancel)")
                return
            if ctx.stopping.is_set():
                stop.set("the service stopping")
                return

    watcher = threading.Thread(target=relay, name="opslab-lab-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(5)


class PassRates:
    """A lab progress callback that reports trials done / total and each variant's pass rate so far."""

    def __init__(
        self, variant_of: dict[str, str], order: list[str], report: Callable[[str, float, str | None], None]
    ) -> None:
        self.variant_of, self.order = variant_of, order
        self.passed = dict.fromkeys(self.order, 0)
        self.finished = dict.fromkeys(self.order, 0)
        self.report, self.done, self.total = report, 0, len(self.variant_of)
        self._lock, self._last = threading.Lock(), 0.0

    @classmethod
    def of(cls, resolved: Resolved, report: Callable[[str, float, str | None], None]) -> PassRates:
        variant_of = {t.trial_id: t.variant_id for t in expand_trials(resolved)}
        return cls(variant_of, [v.id for v in resolved.config.variants.all()], report)

    def __call__(self, p: LabProgress) -> None:
        with self._lock:
            self.done, self.total = p.done, p.total
            if p.trial is not None:
                variant = self.variant_of.get(p.trial.trial_id)
                if variant is not None:
                    self.finished[variant] += 1
                    self.passed[variant] += p.trial.outcome == "success"
            now = time.monotonic()
            if p.trial is not None and p.done < p.total and now - self._last < REPORT_EVERY_S:
                return
            self._last = now
        pct = 95.0 * p.done / p.total if p.total else 95.0
        self.report(RUNNING_STEP, round(pct, 1), self.summary())

    def summary(self, *, final: bool = False) -> str:
        rates = ", ".join(
            f"{v} {self.passed[v] / self.finished[v]:.0%} ({self.passed[v]}/{self.finished[v]})"
            for v in self.order
            if self.finished[v]
        )
        head = f"{self.done}/{self.total} trials done" + (", analysed" if final else "")
        return f"{head}; pass rate {rates}" if rates else head
