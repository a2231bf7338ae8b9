"""Experiments: lab runs found under the configured folders; one run's variant comparison with interval
plots and per-task results; one trial's input, output, events, logs and state diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from opslab import lab
from opslab.api.deps import RuntimeDep
from opslab.api.ui.render import page
from opslab.errors import NotFound
from opslab.runtime import Runtime

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE = 50


def success_rows(comparison: dict[str, Any]) -> list[tuple[str, float | None, float | None, float | None]]:
    """Each variant's success rate with its interval, for the interval plot."""
    rows = []
    for name, v in comparison.get("variants", {}).items():
        ci = v.get("success_ci") or [None, None]
        rows.append((name, v.get("success_rate"), ci[0], ci[1]))
    return rows


def delta_rows(
    comparison: dict[str, Any],
) -> dict[str, list[tuple[str, float | None, float | None, float | None]]]:
    """Per metric, each treatment's difference from the baseline with its interval."""
    out: dict[str, list[tuple[str, float | None, float | None, float | None]]] = {}
    for c in comparison.get("comparisons", []):
        for metric, m in c.get("metrics", {}).items():
            ci = m.get("ci") or [None, None]
            out.setdefault(metric, []).append((c["treatment"], m.get("mean_difference"), ci[0], ci[1]))
    return out


def run_roots(rt: Runtime) -> list[Path]:
    """The configured runs folders, then those of projects that lab jobs of this service ran in, then the
    folder archived runs are read back into."""
    roots = rt.settings.lab_run_roots()
    jobs = rt.jobs.list(kind=lab.KIND, limit=500)
    projects = sorted({Path(j.subject) / ".lab" / "runs" for j in jobs if j.subject})
    return [*roots, *[p for p in projects if p not in roots], archive_dir(rt)]


def archive_dir(rt: Runtime) -> Path:
    return rt.settings.data_dir / "lab" / "archive"


def archived_elsewhere(rt: Runtime, experiment: str | None) -> tuple[int, list[lab.ArchivedRun]]:
    """Indexed runs whose folder this machine does not have (another machine's, or one removed)."""
    total, runs = rt.lab_index.list(experiment=experiment, limit=PAGE)
    return total, [
        a for a in runs if not (Path(a.project) / ".lab" / "runs" / a.run_id / "manifest.json").is_file()
    ]


def run_key(roots: list[Path], run_dir: Path | None) -> str | None:
    """The dashboard's key (``<root key>/<run id>``) of a run directory under one of ``roots``."""
    if run_dir is None:
        return None
    parent = run_dir.parent.resolve()
    found = next((root for root in roots if parent == root.resolve()), None)
    return f"{lab.root_key(found)}/{run_dir.name}" if found is not None else None


@router.get("/experiments", response_class=HTMLResponse)
async def experiments_page(
    request: Request,
    rt: RuntimeDep,
    experiment: str | None = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    roots = await to_thread.run_sync(lambda: run_roots(rt))
    found = await to_thread.run_sync(
        lambda: lab.list_runs(roots, experiment=experiment or None, offset=(page_no - 1) * PAGE, limit=PAGE)
    )
    jobs = await to_thread.run_sync(lambda: rt.jobs.list(kind=lab.KIND, limit=20))
    views = [lab.LabRunView.of(j) for j in jobs]
    archived_total, archived = await to_thread.run_sync(lambda: archived_elsewhere(rt, experiment or None))
    return page(
        request,
        "experiments.html",
        active="experiments",
        title="Experiments",
        runs=found.runs,
        total=found.total,
        page_no=page_no,
        more=found.total > page_no * PAGE,
        roots=roots,
        jobs=[(v, run_key(roots, v.result.run_dir if v.result else None)) for v in views],
        experiment=experiment or "",
        archived=archived,
        archived_total=archived_total,
        artifact_store=rt.settings.resolved_artifact_store,
    )


@router.get("/experiments/archive/{run_id}", response_class=RedirectResponse)
async def archived_page(run_id: str, rt: RuntimeDep) -> RedirectResponse:
    """An archived run, read back from the artifact store into this machine's archive folder."""
    archived = await to_thread.run_sync(lambda: rt.lab_index.get(run_id))
    if archived is None:
        raise NotFound(f"no archived lab run {run_id[:80]!r}", details={"run_id": run_id[:80]})
    folder = archive_dir(rt)
    await to_thread.run_sync(lambda: lab.restore_run(archived, rt.artifacts, folder))
    return RedirectResponse(f"/ui/experiments/{lab.root_key(folder)}/{archived.run_id}", status_code=303)


@router.get("/experiments/{root}/{run_id}", response_class=HTMLResponse)
async def experiment_page(request: Request, root: str, run_id: str, rt: RuntimeDep) -> HTMLResponse:
    view = await to_thread.run_sync(lambda: lab.read_run(run_roots(rt), root, run_id))
    comparison = view.comparison or {}
    variants = list(comparison.get("variants", {})) or sorted({v for t in view.tasks for v in t.by_variant})
    return page(
        request,
        "experiment.html",
        active="experiments",
        title=f"Experiment run {run_id}",
        view=view,
        comparison=comparison,
        variants=variants,
        success=success_rows(comparison),
        deltas=delta_rows(comparison),
    )


@router.get("/experiments/{root}/{run_id}/trials/{trial_id}", response_class=HTMLResponse)
async def trial_page(request: Request, root: str, run_id: str, trial_id: str, rt: RuntimeDep) -> HTMLResponse:
    view = await to_thread.run_sync(lambda: lab.read_trial(run_roots(rt), root, run_id, trial_id))
    return page(
        request,
        "trial.html",
        active="experiments",
        title=f"Trial {trial_id} of {run_id}",
        view=view,
        trial_id=trial_id,
    )
