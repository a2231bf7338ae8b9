"""Fork: a new trial started from a checkpoint of an earlier one, with some bindings changed.

Harnesses report checkpoints as events in ``harness_events.jsonl``::

    {"type": "checkpoint", "path": "ckpt/step-100.pt", "label": "step-100"}

(``path`` as the harness saw it: relative to its working directory, the workspace, or absolute — inside
that trial's own ``out/`` or workspace, without ``..`` or a symbolic link, or the fork refuses it; a trainer
that reports no such event may list them in its output's ``checkpoints``, as paths or objects with a
``path``). ``--at`` picks one: a ``label`` (the last checkpoint with it), ``last``, or an index in the
order reported (0 the first, -1 the last); ``label:NAME`` and ``index:N`` say which when a label looks
like a number. The checkpoint (a file or a folder) is copied into the new trial's ``out/checkpoint/``;
``trial_input.json`` gives its path as the harness will see it, its label and the trial it came from
(``checkpoint: {path, label, index, from_trial}``), and the new trial's record says where it was forked
from (``forked_from``). ``--set key=value`` overrides bindings (values are JSON when they parse, else
strings; dotted keys nest: ``model.temperature=0.2``).
"""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, JsonValue

from opslab.errors import InvalidInput, NotFound, PolicyViolation
from opslab.lab.artifacts import file_digest, now, write_model
from opslab.lab.derived import RunOnDisk, TrialExtras, allocate, open_run, recorded_output, recorded_trial
from opslab.lab.events import EVENTS_FILES, read_trial_events
from opslab.lab.isolation.plan import OUT, WORKSPACE
from opslab.lab.records import SCHEMA_VERSION, Timestamp
from opslab.lab.replay import TrialSummary, derived_context, run_derived
from opslab.lab.untrusted import kind_of, within


class Checkpoint(BaseModel):
    index: int
    label: str | None = None
    reported_path: str  # as the original harness wrote it
    source: Path  # the file or folder copied
    path: str  # the copy, as the forked harness sees it
    sha256: str | None = None  # of a file (not computed for a folder)


class Fork(BaseModel):
    """``forks/<fork_id>/fork.json``: written before the forked trial runs."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    fork_id: str
    from_trial: str
    fork_dir: Path
    trial_dir: Path
    created_at: Timestamp
    checkpoint: Checkpoint
    set: dict[str, JsonValue]
    bindings: dict[str, JsonValue]


def fork_trial(
    run_dir: Path,
    from_trial: str,
    *,
    at: str,
    sets: Mapping[str, JsonValue],
    env_base: Mapping[str, str],
) -> tuple[Fork, TrialSummary]:
    """Run a new trial from ``from_trial``'s checkpoint ``at`` with ``sets`` applied to its bindings."""
    run = open_run(run_dir)
    trial, _ = recorded_trial(run, from_trial)
    reported = reported_checkpoints(run, from_trial)
    index, event = select_checkpoint(reported, at, from_trial)
    reported_path = str(event["path"])
    source = _on_host(run, from_trial, reported_path)
    if not os.path.lexists(source):
        raise NotFound(
            f"checkpoint {index} of trial {from_trial} ({reported_path}) is gone: {source} does not exist",
            details={"trial_id": from_trial, "path": reported_path, "looked_at": str(source)},
        )
    _copyable(source, reported_path, limit=_checkpoint_limit(run))
    bindings = apply_sets(trial.bindings, sets)
    home = allocate(run.run_dir / "forks", f"{from_trial}-fork")
    fork_id = home.name
    trial_dir = home / "trials" / fork_id
    label = event.get("label")
    name = f"checkpoint/{source.name}"
    with derived_context(run, home, env_base) as ctx:
        assert ctx.isolation is not None  # set by the context
        seen_out = os.path.dirname(ctx.isolation.seen_paths(str(trial_dir / "out"))[0])
        checkpoint = Checkpoint(
            index=index,
            label=label if isinstance(label, str) else None,
            reported_path=reported_path,
            source=source,
            path=f"{seen_out}/{name}",
            sha256=file_digest(source),
        )
        fork = Fork(
            run_id=run.run_dir.name,
            fork_id=fork_id,
            from_trial=from_trial,
            fork_dir=home,
            trial_dir=trial_dir,
            created_at=now(),
            checkpoint=checkpoint,
            set=dict(sets),
            bindings=bindings,
        )
        write_model(home / "fork.json", fork)
        extras = TrialExtras(
            trial_dir=str(trial_dir),
            fields={
                "checkpoint": {
                    "path": checkpoint.path,
                    "label": checkpoint.label,
                    "index": index,
                    "from_trial": from_trial,
                },
                "forked_from": {"trial_id": from_trial, "checkpoint": checkpoint.label, "set": dict(sets)},
            },
            files={name: str(source)},
        )
        forked = trial.model_copy(update={"trial_id": fork_id, "bindings": bindings})
        record = run_derived(ctx, forked, extras)
    return fork, TrialSummary.of(record)


def reported_checkpoints(run: RunOnDisk, trial_id: str) -> list[dict[str, object]]:
    """The trial's checkpoint events in order; else the ``checkpoints`` of its output."""
    tdir = run.run_dir / "trials" / trial_id
    events = read_trial_events(str(tdir), *EVENTS_FILES).events
    found = [ev for ev in events if ev.get("type") == "checkpoint" and _has_path(ev)]
    if found:
        return found
    record = recorded_output(run, trial_id)
    listed: list[dict[str, object]] = []
    for c in (record.checkpoints if record else None) or []:
        if isinstance(c, str) and c:
            listed.append({"path": c})
        elif isinstance(c, dict) and _has_path(c):
            listed.append(dict(c))
    return listed


def _has_path(checkpoint: Mapping[str, object]) -> bool:
    path = checkpoint.get("path")
    return isinstance(path, str) and bool(path)


def select_checkpoint(
    reported: Sequence[Mapping[str, object]], at: str, trial_id: str
) -> tuple[int, Mapping[str, object]]:
    """The checkpoint ``at`` names (see the module docstring) and its index."""
    if not reported:
        raise InvalidInput.for_field(
            "--at",
            f"trial {trial_id} reported no checkpoints (no checkpoint events in its harness_events.jsonl)",
            available=[],
        )
    kind, value = ("", at)
    if at.startswith(("label:", "index:")):
        kind, value = at.split(":", 1)
    labelled = [i for i, c in enumerate(reported) if c.get("label") == value]
    if labelled and kind in ("", "label"):
        return labelled[-1], reported[labelled[-1]]
    if kind == "" and value == "last":
        return len(reported) - 1, reported[-1]
    if kind in ("", "index") and value.lstrip("-").isdigit() and -len(reported) <= int(value) < len(reported):
        i = int(value) % len(reported)
        return i, reported[i]
    available = [{"index": i, "label": c.get("label"), "path": c.get("path")} for i, c in enumerate(reported)]
    raise InvalidInput.for_field(
        "--at",
        f"no checkpoint of trial {trial_id} matches {at!r}: give a label, last, or an index from 0 to "
        f"{len(reported) - 1}",
        available=available,
    )


def _on_host(run: RunOnDisk, trial_id: str, reported: str) -> Path:
    """Where the checkpoint the harness reported is on this machine: inside that trial's own ``out/`` or
    workspace, reached without ``..`` or a symbolic link — anything else is refused, naming the path (a
    trial's events are its data: a fork must never copy a host file a harness names)."""
    tdir = run.run_dir / "trials" / trial_id
    folders = {"out": tdir / "out", "workspace": tdir / "workspace"}
    candidates: list[tuple[Path, str]] = []
    container = run.manifest.isolation.sandbox == "container"
    for seen, name in ((OUT, "out"), (WORKSPACE, "workspace")):
        if container and (reported == seen or reported.startswith(seen + "/")):
            candidates.append((folders[name], reported[len(seen) :].lstrip("/")))
    if not container and os.path.isabs(reported):
        candidates += [(root, os.path.relpath(reported, root)) for root in folders.values()]
    if not os.path.isabs(reported):
        candidates.append((folders["workspace"], reported))  # as the harness saw it: from its workspace
    for root, relative in candidates:
        inside = within(str(root), relative)
        if inside is not None:
            return root / inside
    raise PolicyViolation(
        f"checkpoint path {reported!r} of trial {trial_id} is not inside that trial's out/ or workspace "
        "(no '..', no symbolic link): refused",
        details={"field": "--at", "trial_id": trial_id, "path": reported},
    )


# A checkpoint larger than this (or than runtime.limits.workspace_mb) is not copied into a fork.
CHECKPOINT_LIMIT_BYTES = 8 * 1024**3


def _checkpoint_limit(run: RunOnDisk) -> int:
    workspace_mb = run.resolved.config.runtime.limits.workspace_mb
    return workspace_mb * 1024 * 1024 if workspace_mb else CHECKPOINT_LIMIT_BYTES


def _copyable(source: Path, reported: str, *, limit: int) -> None:
    """Refuse a checkpoint that is not plain files and folders (a link, a FIFO, a device inside it), or
    larger than ``limit`` bytes, before anything is copied."""
    total = 0
    for path in [source, *(source.rglob("*") if source.is_dir() and not source.is_symlink() else ())]:
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            total += path.lstat().st_size
        elif not stat.S_ISDIR(mode) and not (stat.S_ISLNK(mode) and path != source):
            raise PolicyViolation(
                f"checkpoint {reported!r}: {path.name} is {kind_of(mode)}: refused",
                details={"field": "--at", "path": reported},
            )
        if total > limit:
            raise PolicyViolation(
                f"checkpoint {reported!r} is over {limit} bytes: refused (runtime.limits.workspace_mb)",
                details={"field": "--at", "path": reported, "limit_bytes": limit},
            )


def parse_sets(items: Sequence[str]) -> dict[str, JsonValue]:
    """``--set key=value`` items: the value as JSON when it parses (not NaN or Infinity), else a string."""
    sets: dict[str, JsonValue] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not all(part.strip() for part in key.split(".")):
            raise InvalidInput.for_field("--set", f"expected KEY=VALUE (dotted keys nest), got {item!r}")
        try:
            sets[key] = json.loads(raw, parse_constant=_not_json)
        except ValueError:
            sets[key] = raw
    return sets


def apply_sets(bindings: Mapping[str, JsonValue], sets: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = copy.deepcopy(dict(bindings))
    for key, value in sets.items():
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise InvalidInput.for_field(
                    "--set", f"cannot set {key}: the binding {where} is {json.dumps(child)}, not an object"
                )
            node = child
        node[parts[-1]] = value
    return out


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")
