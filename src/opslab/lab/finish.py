"""After the trials: the analysis tables, the statistical comparison and the run's attestation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opslab.lab.analysis import build_tables, compare, load_outputs
from opslab.lab.artifacts import canonical_digest, file_digest, now, write_model
from opslab.lab.config import Resolved
from opslab.lab.plan import expand_trials
from opslab.lab.records import Attestation, TrialRecord, runner_info


@dataclass(frozen=True)
class RunAnalysis:
    """A finished run analysed: its trial records, table row counts, comparison, outcome counts."""

    outputs: list[TrialRecord]
    tables: dict[str, int]
    comparison: dict[str, Any]  # as written to analysis/comparison.json
    outcomes: dict[str, int]


def analyse_run(resolved: Resolved, run_dir: Path) -> RunAnalysis:
    """Analyse a run whose trials are all on disk: tables, comparison, report and attestation."""
    cfg = resolved.config
    outputs = load_outputs(run_dir, [t.trial_id for t in expand_trials(resolved)])
    variants = [v.id for v in cfg.variants.all()]
    tables = build_tables(run_dir, outputs, variants)
    metrics = list(dict.fromkeys([*cfg.analysis.primary_metrics, *cfg.analysis.secondary_metrics]))
    comparison = compare(run_dir, outputs, variants, metrics)
    attest(run_dir, resolved, outputs)
    outcomes: dict[str, int] = {}
    for o in outputs:
        outcomes[o.outcome] = outcomes.get(o.outcome, 0) + 1
    return RunAnalysis(outputs=outputs, tables=tables, comparison=comparison, outcomes=outcomes)


def attest(run_dir: Path, resolved: Resolved, outputs: list[TrialRecord]) -> Attestation:
    """``attestation.json``: digests of the experiment, dataset, harness scripts and every trial record."""
    command = resolved.config.runtime.harness.command
    scripts = {
        a: file_digest(resolved.project_root / a) for a in command if (resolved.project_root / a).is_file()
    }
    attestation = Attestation(
        **runner_info(),
        run_id=run_dir.name,
        created_at=now(),
        resolved_experiment_digest=(run_dir / "resolved_experiment.digest").read_text().strip(),
        dataset_digest=file_digest(resolved.dataset_path),
        harness_command=command,
        harness_digests=scripts,
        # Each record as written (the fields it holds), so the digest can be recomputed from the files.
        trial_outputs_digest=canonical_digest(
            [o.model_dump(mode="json", exclude_unset=True) for o in outputs]
        ),
    )
    write_model(run_dir / "attestation.json", attestation)
    return attestation
