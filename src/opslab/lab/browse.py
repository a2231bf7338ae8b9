"""Reading lab runs back for people: the runs under some folders, one run's comparison and per-task
results, one trial's files. Read-only, tolerant of runs still in progress (a run without its analysis
yet lists with what it has), and never outside the folders it was given."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opslab.errors import NotFound
from opslab.lab.events import EVENTS_FILES, read_events, read_trial_events
from opslab.lab.records import Manifest, TrialRecord
from opslab.lab.runner import RUN_ID
from opslab.lab.untrusted import read_beneath

LOG_LIMIT = 64 * 1024  # bytes of a trial's log shown (its tail)
EVENTS_LIMIT = 500


@dataclass(frozen=True)
class RunListing:
    root: str  # the key of the folder it was found in (``root_key``)
    run_id: str
    manifest: Manifest
    outcomes: dict[str, int]
    variants: list[str]

    @property
    def key(self) -> str:
        return f"{self.root}/{self.run_id}"


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    by_variant: dict[str, list[TrialRecord]]


@dataclass(frozen=True)
class RunView:
    listing: RunListing
    comparison: dict[str, Any] | None
    tasks: list[TaskRow]
    report_md: str | None


@dataclass(frozen=True)
class TrialView:
    listing: RunListing
    record: TrialRecord | None
    trial_input: Any
    events: list[Any]
    logs: dict[str, str]
    state_diff: Any
    files: list[str] = field(default_factory=list)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def root_key(root: Path) -> str:
    """A folder's key in links: stable whatever other folders are listed, and no path in the URL."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]


def _manifest(run_dir: Path) -> Manifest | None:
    data = _read(run_dir / "manifest.json")
    if not isinstance(data, dict):
        return None
    try:
        return Manifest.model_validate(data)
    except ValueError:
        return None


def _listing(root: str, run_dir: Path, manifest: Manifest) -> RunListing:
    summary = _read(run_dir / "analysis" / "comparison.json")
    variants = list(summary["variants"]) if isinstance(summary, dict) and "variants" in summary else []
    outcomes: dict[str, int] = {}
    for line in read_events(str(run_dir / "analysis" / "tables" / "trials.jsonl")):
        outcome = str(line.get("outcome"))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return RunListing(root=root, run_id=run_dir.name, manifest=manifest, outcomes=outcomes, variants=variants)


@dataclass(frozen=True)
class RunList:
    total: int
    runs: list[RunListing]


def list_runs(
    roots: list[Path], *, experiment: str | None = None, offset: int = 0, limit: int | None = None
) -> RunList:
    """The runs under ``roots``, newest first: every manifest is read to order them, the rest of a run
    (its outcomes and variants) only for the ``offset``/``limit`` page."""
    found: list[tuple[str, Path, Manifest]] = []
    for root in roots:
        if not root.is_dir():
            continue
        key = root_key(root)
        for run_dir in root.iterdir():
            if run_dir.is_dir() and RUN_ID.fullmatch(run_dir.name):
                manifest = _manifest(run_dir)
                if manifest and (experiment is None or manifest.experiment_id == experiment):
                    found.append((key, run_dir, manifest))
    found.sort(key=lambda f: (f[2].created_at, f[1].name), reverse=True)
    page = found[offset : None if limit is None else offset + limit]
    return RunList(total=len(found), runs=[_listing(*f) for f in page])


def _run_dir(roots: list[Path], root: str, run_id: str) -> tuple[Path, RunListing]:
    folder = next((r for r in roots if root_key(r) == root), None)
    if folder is None or not RUN_ID.fullmatch(run_id):
        raise NotFound(f"no lab run {run_id[:80]!r}", details={"run": f"{root[:20]}/{run_id[:80]}"})
    run_dir = folder / run_id
    manifest = _manifest(run_dir) if run_dir.is_dir() else None
    if manifest is None:
        raise NotFound(f"no lab run {run_id!r} under {folder}", details={"run": f"{root}/{run_id}"})
    listing = _listing(root, run_dir, manifest)
    return run_dir, listing


def read_run(roots: list[Path], root: str, run_id: str) -> RunView:
    """One run: its comparison (``analysis/comparison.json``) and every trial by task and variant."""
    run_dir, listing = _run_dir(roots, root, run_id)
    comparison = _read(run_dir / "analysis" / "comparison.json")
    tasks: dict[str, dict[str, list[TrialRecord]]] = {}
    trials_dir = run_dir / "trials"
    paths = sorted(trials_dir.glob("*/trial_output.json")) if trials_dir.is_dir() else []
    for path in paths:
        data = _read(path)
        try:
            record = TrialRecord.model_validate(data)
        except ValueError:
            continue
        tasks.setdefault(record.task_id, {}).setdefault(record.variant_id, []).append(record)
    rows = [
        TaskRow(task_id=t, by_variant={v: sorted(rs, key=lambda r: r.replication) for v, rs in by.items()})
        for t, by in sorted(tasks.items())
    ]
    report = run_dir / "analysis" / "report.md"
    return RunView(
        listing=listing,
        comparison=comparison if isinstance(comparison, dict) else None,
        tasks=rows,
        report_md=report.read_text(encoding="utf-8") if report.is_file() else None,
    )


def _tail(trial_dir: Path, relative: str) -> str:
    """The end of a log the trial's harness wrote, read as untrusted data (``untrusted``)."""
    taken = read_beneath(str(trial_dir), relative, limit=LOG_LIMIT, tail=True)
    if taken.refused is not None:
        return f"[{taken.refused}]"
    text = (taken.data or b"").decode("utf-8", errors="replace")
    return (f"… ({taken.size - LOG_LIMIT} bytes before)\n" if taken.cut else "") + text


def read_trial(roots: list[Path], root: str, run_id: str, trial_id: str) -> TrialView:
    """One trial's input, output, events, logs and state diff."""
    run_dir, listing = _run_dir(roots, root, run_id)
    trial_dir = run_dir / "trials" / trial_id
    if not RUN_ID.fullmatch(trial_id) or not trial_dir.is_dir():
        raise NotFound(f"no trial {trial_id[:80]!r} in run {run_id!r}", details={"trial": trial_id[:80]})
    out = trial_dir / "out"
    data = _read(trial_dir / "trial_output.json")
    try:
        record = TrialRecord.model_validate(data) if data is not None else None
    except ValueError:
        record = None
    events = read_trial_events(str(trial_dir), *EVENTS_FILES).events[:EVENTS_LIMIT]
    logs = {
        name: _tail(trial_dir, f"out/{name}")
        for name in ("stdout.log", "stderr.log")
        if (out / name).is_file() or (out / name).is_symlink()
    }
    files = sorted(p.name for p in out.iterdir()) if out.is_dir() and not out.is_symlink() else []
    return TrialView(
        listing=listing,
        record=record,
        trial_input=_read(trial_dir / "trial_input.json"),
        events=events,
        logs=logs,
        state_diff=_read(trial_dir / "state" / "diff.json"),
        files=files,
    )
