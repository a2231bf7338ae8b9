"""One trial, start to finish: a fresh workspace, `trial_input.json`, the harness, the state snapshots and
`trial_output.json`, written last (its presence means the trial is done). Paths are plain strings here:
this runs thousands of times per run and pathlib's per-call cost shows."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opslab.capped_log import CappedLog
from opslab.errors import InvalidInput
from opslab.lab.artifacts import write_text
from opslab.lab.config import Resolved
from opslab.lab.derived import TrialExtras
from opslab.lab.events import EVENTS_FILES, count_events, read_span_events, read_trial_events
from opslab.lab.harness import (
    HarnessResult,
    build_argv,
    output_problem,
    resolve_program,
    run_harness,
    trial_env,
)
from opslab.lab.isolation import IsolationPlan, classify, plan_of
from opslab.lab.isolation.limits import tree_bytes
from opslab.lab.isolation.plan import OTEL_LEVELS
from opslab.lab.isolation.reaper import adopt_orphans, end_leftovers
from opslab.lab.plan import Trial
from opslab.lab.record_json import trial_input_json, trial_record_json
from opslab.lab.records import (
    Outcome,
    TrialRecord,
)
from opslab.lab.secrets import scrubber, secret_values
from opslab.lab.untrusted import MIB
from opslab.lab.workspace import Template, diff

SETUP_SKIP = frozenset({".lab", ".git"})
LOG_NAMES = ("stdout.log", "stderr.log")  # in the trial's out/


@dataclass
class TrialContext:
    """What every trial of a run shares, computed once: the project template and its snapshot."""

    resolved: Resolved
    run_dir: Path
    env_base: dict[str, str]
    # Harnesses started on the runner's own threads die with it (PR_SET_PDEATHSIG); worker processes
    # take theirs down themselves when the runner goes (see pool).
    tie_to_runner: bool = False
    # How trials are isolated (the runner decides it once, with its services); None: from the config.
    isolation: IsolationPlan | None = None
    # False when the runner makes records durable itself, many at once (``commit.RecordLog``).
    sync_records: bool = True
    template: Template = field(init=False)
    pre: dict[str, str] = field(init=False)
    pre_json: str = field(init=False)  # path of the shared pre-run snapshot
    no_diff_json: str = field(init=False)  # path of the shared diff of a workspace left as it was

    def __post_init__(self) -> None:
        if self.isolation is None:
            self.isolation = plan_of(self.resolved)
        trials = os.path.join(self.run_dir, "trials")
        os.makedirs(trials, exist_ok=True)
        # After run-dev's --setup, trials start from the set-up copy, dependencies included.
        set_up = os.path.join(self.run_dir, "setup", "workspace")
        if os.path.isdir(set_up):
            self.template = Template.scan(Path(set_up), skip=SETUP_SKIP)
        else:
            self.template = Template.scan(
                self.resolved.project_root, exclude=left_out(self.resolved, self.isolation)
            )
        self.pre = self.template.digests()
        # Every workspace starts as the same copy: its pre-run snapshot is written once and hard-linked.
        # Beside trials/, not in it: trials/ holds one folder per trial and nothing else. Not synced: no
        # trial's state files are (the records are, by the runner's commits).
        self.pre_json = os.path.join(self.run_dir, "project_snapshot.json")
        write_text(self.pre_json, _dumps(self.pre))
        # A trial that leaves its workspace as it found it links its post-run snapshot and diff too.
        self.no_diff_json = os.path.join(self.run_dir, "project_snapshot_diff.json")
        write_text(self.no_diff_json, _dumps(diff(self.pre, self.pre)))
        output_problem({"outcome": "success"}, trainer=False)  # compiles the validator once, before a fork


def left_out(resolved: Resolved, plan: IsolationPlan) -> tuple[Path, ...]:
    """What of the project no workspace gets: the dataset (each trial gets its task) and, when the trials
    run on it, the image's root filesystem or tarball if it lies in the project (a copy in every
    workspace cost a trial of a busybox image two megabytes of copying)."""
    if plan.sandbox != "rootfs":
        return (resolved.dataset_path,)
    try:
        ref = classify(plan.image, resolved.project_root)
    except InvalidInput:  # no such image: the plan refuses it, not the workspace
        return (resolved.dataset_path,)
    return (resolved.dataset_path, *([ref.path] if ref.path else []))


_NO_EXTRAS = TrialExtras()


def run_trial(
    ctx: TrialContext, t: Trial, *, attempt: int = 1, extras: TrialExtras | None = None
) -> TrialRecord:
    """``extras``: a replay's or a fork's folder, trial-input fields and files (see ``TrialExtras``)."""
    return TrialRecord.model_validate_json(run_trial_written(ctx, t, attempt=attempt, extras=extras)[1])


class Abandoned(Protocol):
    """What says a trial's run stopped (a ``threading.Event``, or a worker's flag a signal handler sets)."""

    def is_set(self) -> bool: ...


class TrialAbandoned(Exception):
    """The run stopped while the trial ran (its harness killed): it leaves no record, and runs again on
    ``--resume``."""


def run_trial_written(
    ctx: TrialContext,
    t: Trial,
    *,
    attempt: int = 1,
    extras: TrialExtras | None = None,
    abandoned: Abandoned | None = None,
) -> tuple[Outcome, str]:
    """``run_trial``'s outcome, and the record's JSON exactly as ``trial_output.json`` holds it (less the
    final newline): a pool hands it to the runner, which commits it without reading the file back. Once
    ``abandoned`` is set (before the harnesses are killed), no record is written: ``TrialAbandoned``."""
    cfg = ctx.resolved.config
    limits = cfg.runtime.limits
    run_id = ctx.run_dir.name
    extra = extras or _NO_EXTRAS
    tdir = extra.trial_dir or os.path.join(ctx.run_dir, "trials", t.trial_id)
    out_dir, state_dir, ws = tdir + "/out", tdir + "/state", tdir + "/workspace"
    try:
        os.mkdir(tdir)
    except FileExistsError:  # an interrupted or errored attempt: start clean
        shutil.rmtree(tdir, ignore_errors=True)
        if os.path.lexists(tdir):  # a file, or a link: not a folder rmtree clears
            os.unlink(tdir)
        os.mkdir(tdir)
    os.mkdir(out_dir)
    os.mkdir(state_dir)
    extra.place(out_dir)
    input_path, output_path = out_dir + "/trial_input.json", out_dir + "/trial_output.json"
    # The run's record and the harness's copy: two files, so that a harness rewriting its input rewrites
    # only its own (a hard link would make the record the harness's to change).
    given = trial_input_json(cfg, run_id, t, extra.fields)
    write_text(tdir + "/trial_input.json", given, atomic=False)
    write_text(input_path, given, atomic=False)
    ctx.template.materialize(ws)
    plan = ctx.isolation
    assert plan is not None  # set in __post_init__
    # A sandboxed harness sees only its workspace, out/ and home: the run's shared snapshots may be linked
    # into its state/. A host process (network full) could write through such a link: it gets copies.
    shared = _share if plan.sandboxed or plan.sandbox != "local" else _copy
    shared(ctx.pre_json, state_dir + "/pre.json")
    events_path = out_dir + "/harness_events.jsonl"
    secrets = secret_values(cfg.runtime.env_allow, ctx.env_base)
    env = trial_env(
        cfg.design.sanitization_profile,
        ctx.env_base,
        tdir,
        {
            "OPSLAB_TRIAL_ID": t.trial_id,
            "OPSLAB_RUN_ID": run_id,
            "OPSLAB_TRIAL_SEED": str(t.seed),
            "OPSLAB_EVENTS_PATH": events_path,
            **secrets,
        },
    )
    argv = build_argv(cfg.runtime.harness.command, *plan.seen_paths(out_dir))
    if plan.sandbox == "local":
        argv[0] = resolve_program(argv[0], env.get("PATH", ""))
    if abandoned is not None and abandoned.is_set():  # stopped while this trial was laid out: no harness
        raise TrialAbandoned(t.trial_id)
    launch = plan.launch(argv, ws=ws, out_dir=out_dir, env=env, trial_id=t.trial_id)
    # A host process with no group to end it with (not root): what it leaves running comes to this
    # process, which ends it with the trial (``reaper``).
    orphans = launch.release is None and plan.sandbox == "local" and not plan.sandboxed and adopt_orphans()
    scrub = scrubber(secrets) if secrets else None
    since = scrub.mark(state_dir) if scrub else None
    logs = [CappedLog(f"{out_dir}/{name}", keep=limits.log_keep_mb * MIB) for name in LOG_NAMES]
    started = time.time()
    try:
        res = run_harness(
            argv=launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            pre_exec=launch.pre_exec,
            pass_fds=launch.pass_fds,
            started=launch.started,
            timeout_s=cfg.design.trial_timeout_s,
            stdout=logs[0],
            stderr=logs[1],
            output_path=output_path,
            trainer=cfg.experiment.workload_type == "trainer",
            tie_to_parent=ctx.tie_to_runner,
            max_output_bytes=limits.output_mb * MIB,
            remote=launch.remote,
        )
    finally:
        launch.close()
        if orphans:
            end_leftovers(t.trial_id)
    if limits.workspace_mb and (size := tree_bytes(ws)) > limits.workspace_mb * MIB:
        res = HarnessResult(
            "error",
            {},
            res.exit_code,
            res.duration_ms,
            f"workspace: {size} bytes once the trial ended, over runtime.limits.workspace_mb "
            f"({limits.workspace_mb} MiB)",
        )
    if scrub:  # everything the harness wrote (out/, workspace, home, tmp), before anything reads it
        scrub.tree(tdir, since_ns=since, skip=("state",))
        res.output, res.error = scrub.value(res.output), scrub.value(res.error)
    post = ctx.template.snapshot(ws)
    if post == ctx.pre:
        shared(ctx.pre_json, state_dir + "/post.json")
        shared(ctx.no_diff_json, state_dir + "/diff.json")
    else:
        write_text(state_dir + "/post.json", _dumps(post), atomic=False)
        write_text(state_dir + "/diff.json", _dumps(diff(ctx.pre, post)), atomic=False)
    level = cfg.runtime.harness.integration_level
    notes = [
        f"{name}: {log.total} bytes written, {log.cut} cut (the first and last {log.keep} kept)"
        for name, log in zip(LOG_NAMES, logs, strict=True)
        if log.cut
    ]
    events: list[dict[str, object]] = []
    read_limit = limits.events_mb * MIB
    if level != "cli_basic":
        found = read_trial_events(tdir, *EVENTS_FILES, limit=read_limit)
        events, notes = found.events, [*notes, *([found.note] if found.note else [])]
    if level in OTEL_LEVELS:  # counted with the events; the agent run reads the spans themselves
        spans = read_span_events(tdir, read_limit)
        events, notes = events + spans.events, [*notes, *([spans.note] if spans.note else [])]
    # The harness's output passed the protocol's JSON Schema: written as it is, not validated again.
    written = trial_record_json(
        t,
        outcome=res.outcome,
        output=res.output,
        error=res.error,
        exit_code=res.exit_code,
        duration_ms=res.duration_ms,
        attempt=attempt,
        event_counts=count_events(events),
        started=started,
        extra=extra.fields,
        notes=notes,
    )
    # Written last, atomically (and fsynced, unless the runner commits it): its presence means the trial
    # is done.
    if abandoned is not None and abandoned.is_set():
        raise TrialAbandoned(t.trial_id)
    write_text(tdir + "/trial_output.json", written, durable=ctx.sync_records)
    return res.outcome, written


def _share(shared: str, dest: str) -> None:
    """``dest`` as a hard link to the run's ``shared`` file; a copy where it cannot be one (a filesystem
    without hard links, or a file at its link limit: 65,000 on ext4)."""
    try:
        os.link(shared, dest)
    except OSError:
        shutil.copyfile(shared, dest)


_TEXTS: dict[str, bytes] = {}  # the run's shared snapshots, read once per process


def _copy(shared: str, dest: str) -> None:
    """``dest`` as a file of its own with ``shared``'s content (read once, then kept: it never changes)."""
    data = _TEXTS.get(shared)
    if data is None:
        with open(shared, "rb") as f:
            data = _TEXTS[shared] = f.read()
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
