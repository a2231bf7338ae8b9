"""After the trials: the analysis tables, the statistical comparison and the run's attestation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opslab.lab.analysis import build_tables, compare, read_records
from opslab.lab.artifacts import (
    canonical_json,
    canonical_list_digest,
    file_digest,
    now,
    read_json,
    write_model,
)
from opslab.lab.commit import WrittenRecords
from opslab.lab.config import Resolved
from opslab.lab.plan import trial_ids
from opslab.lab.records import (
    Attestation,
    LabRunPredicate,
    ResourceDescriptor,
    RunnerRef,
    TrialRecord,
    runner_info,
)


@dataclass(frozen=True)
class RunAnalysis:
    """A finished run analysed: its trial records, table row counts, comparison, outcome counts."""

    outputs: list[TrialRecord]
    tables: dict[str, int]
    comparison: dict[str, Any]  # as written to analysis/comparison.json
    outcomes: dict[str, int]


# The models the analysis validates or builds, made when first used (``defer_build``): ``build_models``.
ANALYSIS_MODELS = (TrialRecord, ResourceDescriptor, RunnerRef, LabRunPredicate, Attestation)


def build_models() -> None:
    """The analysis's models built now: the runner calls this on a thread while its trials run, so that
    the run's end, which waits for the analysis, does not also wait for their schemas."""
    for model in ANALYSIS_MODELS:
        model.model_rebuild()


def analyse_run(resolved: Resolved, run_dir: Path, written: WrittenRecords | None = None) -> RunAnalysis:
    """Analyse a run whose trials are all on disk: tables, comparison, report and attestation.
    ``written``: records the caller holds as their files hold them (see ``read_records``), with their
    canonical JSON."""
    cfg = resolved.config
    records = read_records(run_dir, trial_ids(resolved), written)
    outputs = [record for record, _ in records]
    variants = [v.id for v in cfg.variants.all()]
    tables = build_tables(run_dir, outputs, variants)
    metrics = list(dict.fromkeys([*cfg.analysis.primary_metrics, *cfg.analysis.secondary_metrics]))
    comparison = compare(run_dir, outputs, variants, metrics, cfg.analysis.metric_kinds)
    attest(run_dir, resolved, records, written.canonical if written is not None else None)
    outcomes: dict[str, int] = {}
    for o in outputs:
        outcomes[o.outcome] = outcomes.get(o.outcome, 0) + 1
    return RunAnalysis(outputs=outputs, tables=tables, comparison=comparison, outcomes=outcomes)


def attest(
    run_dir: Path,
    resolved: Resolved,
    records: list[tuple[TrialRecord, bytes]],
    canonical: Mapping[str, str] | None = None,
) -> Attestation:
    """``attestation.json``: an in-toto Statement over every trial record (``read_records``: each with
    its file's bytes), its predicate naming the materials (resolved config, dataset, harness files) by
    digest, the isolation the manifest records and the runner. ``canonical``: records' canonical JSON
    made already, by trial id (``WrittenRecords``)."""
    cfg = resolved.config
    root = resolved.project_root
    subjects = [  # values made here: constructed, not validated (a run attests thousands)
        ResourceDescriptor.model_construct(
            name=f"trials/{o.trial_id}/trial_output.json",
            digest={"sha256": hashlib.sha256(raw).hexdigest()},
            annotations={"trial_id": o.trial_id, "variant_id": o.variant_id, "outcome": o.outcome},
        )
        for o, raw in records
    ]
    materials = [
        ResourceDescriptor(
            name="resolved_experiment.json",
            digest=_sha256(run_dir / "resolved_experiment.json"),
            annotations={"role": "config"},
        ),
        ResourceDescriptor(
            name=_relative(resolved.dataset_path, root),
            digest=_sha256(resolved.dataset_path),
            annotations={"role": "dataset"},
        ),
    ]
    for arg in dict.fromkeys(cfg.runtime.harness.command):
        if (root / arg).is_file():
            materials.append(
                ResourceDescriptor(name=arg, digest=_sha256(root / arg), annotations={"role": "harness"})
            )
    info = runner_info()
    manifest = read_json(run_dir / "manifest.json")
    predicate = LabRunPredicate(
        run_id=run_dir.name,
        experiment_id=cfg.experiment.id,
        created_at=now(),
        materials=materials,
        resolved_experiment_digest=(run_dir / "resolved_experiment.digest").read_text().strip(),
        harness_command=list(cfg.runtime.harness.command),
        isolation=manifest.get("isolation") or {},  # as the runner wrote it, fields it knows or not
        runner=RunnerRef(
            name=info["runner"],
            version=info["runner_version"],
            python=info["python"],
            platform=info["platform"],
        ),
        # Each record as written (the fields it holds), so the digest can be recomputed from the files.
        trial_outputs_digest=records_digest(records, canonical or {}),
    )
    attestation = Attestation(subject=subjects, predicate=predicate)
    write_model(run_dir / "attestation.json", attestation)
    return attestation


def records_digest(records: list[tuple[TrialRecord, bytes]], canonical: Mapping[str, str]) -> str:
    """``canonical_digest`` of the records' JSON, in plan order, from each one's canonical text."""
    return canonical_list_digest(
        [canonical.get(o.trial_id) or canonical_json(json.loads(raw)) for o, raw in records]
    )


def _sha256(path: Path) -> dict[str, str]:
    digest = file_digest(path)
    return {"sha256": digest} if digest else {}


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
