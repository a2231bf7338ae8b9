"""After the trials: the analysis tables, the statistical comparison and the run's attestation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opslab.lab.analysis import build_tables, compare, load_outputs
from opslab.lab.artifacts import canonical_digest, file_digest, now, runner_info, write_json
from opslab.lab.config import Resolved
from opslab.lab.plan import expand_trials


def finish_run(resolved: Resolved, run_dir: Path) -> dict[str, Any]:
    """Analyse a run whose trials are all on disk; returns outputs, table counts, comparison, outcomes."""
    cfg = resolved.config
    outputs = load_outputs(run_dir, [t.trial_id for t in expand_trials(resolved)])
    variants = [v.id for v in cfg.variants.all()]
    tables = build_tables(run_dir, outputs, variants)
    metrics = list(dict.fromkeys([*cfg.analysis.primary_metrics, *cfg.analysis.secondary_metrics]))
    comparison = compare(run_dir, outputs, variants, metrics)
    attest(run_dir, resolved, outputs)
    outcomes: dict[str, int] = {}
    for o in outputs:
        outcomes[o["outcome"]] = outcomes.get(o["outcome"], 0) + 1
    return {"outputs": outputs, "tables": tables, "comparison": comparison, "outcomes": outcomes}


def attest(run_dir: Path, resolved: Resolved, outputs: list[dict[str, Any]]) -> None:
    """``attestation.json``: digests of the experiment, dataset, harness scripts and every trial output."""
    command = resolved.config.runtime.harness.command
    scripts = {
        a: file_digest(resolved.project_root / a) for a in command if (resolved.project_root / a).is_file()
    }
    write_json(
        run_dir / "attestation.json",
        {
            "schema_version": 1,
            "run_id": run_dir.name,
            "created_at": now(),
            "resolved_experiment_digest": (run_dir / "resolved_experiment.digest").read_text().strip(),
            "dataset_digest": file_digest(resolved.dataset_path),
            "harness_command": command,
            "harness_digests": scripts,
            "trial_outputs_digest": canonical_digest(outputs),
            **runner_info(),
        },
    )
