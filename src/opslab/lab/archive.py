"""A finished run kept where every machine can read it: its files copied into an ``ArtifactStore`` (under
``lab/<run id>/``) and its listing (manifest, outcomes, variants) handed to an index, so the API and the
dashboard of any replica list and show the run after the folder it ran in is gone.

Archived: everything the run wrote but the trials' workspaces (copies of the project) and the runner's
lock; a file over ``MAX_FILE_BYTES`` is left out and named in the index. Reading back materialises the
archive into a local folder that the ordinary readers (``browse``) read like any run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from opslab.artifacts import ArtifactStore, get_tree, put_tree
from opslab.lab.events import read_events
from opslab.lab.records import Manifest

MAX_FILE_BYTES = 64 * 1024 * 1024
SKIPPED_DIRS = {"workspace"}
SKIPPED_FILES = {"runner.lock"}


class ArchivedRun(BaseModel):
    """One run as the index keeps it: enough to list it, and where its files are."""

    schema_version: int = 1
    run_id: str
    experiment_id: str
    project: str = Field(description="The project folder it ran in (which may be gone).")
    manifest: Manifest
    outcomes: dict[str, int]
    variants: list[str]
    prefix: str = Field(description="Where its files are in the artifact store.")
    files: int
    left_out: list[str] = Field(default_factory=list, description="Files too large to archive.")


def prefix_of(run_id: str) -> str:
    return f"lab/{run_id}"


def archive_run(run_dir: Path, store: ArtifactStore) -> ArchivedRun:
    """Copy ``run_dir``'s files into ``store`` and describe the run for the index."""
    manifest = Manifest.model_validate_json((run_dir / "manifest.json").read_text(encoding="utf-8"))
    keep: list[Path] = []
    left_out: list[Path] = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if not path.is_file() or path.name in SKIPPED_FILES or SKIPPED_DIRS & set(rel.parts):
            continue
        (left_out if path.stat().st_size > MAX_FILE_BYTES else keep).append(path)
    prefix = prefix_of(run_dir.name)
    count = put_tree(store, prefix, run_dir, keep)
    return ArchivedRun(
        run_id=run_dir.name,
        experiment_id=manifest.experiment_id,
        project=str(run_dir.parent.parent.parent),
        manifest=manifest,
        outcomes=_outcomes(run_dir),
        variants=_variants(run_dir),
        prefix=prefix,
        files=count,
        left_out=[p.relative_to(run_dir).as_posix() for p in left_out],
    )


def restore_run(archived: ArchivedRun, store: ArtifactStore, into: Path) -> Path:
    """The run's folder materialised under ``into`` (``into/<run id>``) from the store."""
    dest = into / archived.run_id
    if not (dest / "manifest.json").is_file():
        get_tree(store, archived.prefix, dest)
    return dest


def _outcomes(run_dir: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in read_events(str(run_dir / "analysis" / "tables" / "trials.jsonl")):
        outcome = str(line.get("outcome"))
        out[outcome] = out.get(outcome, 0) + 1
    return out


def _variants(run_dir: Path) -> list[str]:
    try:
        summary = json.loads((run_dir / "analysis" / "comparison.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return list(summary.get("variants", {})) if isinstance(summary, dict) else []
