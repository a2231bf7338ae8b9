"""Two runs over the same tasks compared (``opslab lab compare RUN_A RUN_B``): before and after a change.

The statistics are a run's own (``comparison``): run A's variant is the baseline, run B's the
treatment, paired by task — success rates with Wilson intervals, differences of rates with Newcombe's
hybrid score interval, McNemar or the sign test on pass/fail, paired t for numeric metrics, the
objective by its direction — under the same error rule. Only the tasks both runs have are compared; the
others are listed. Variants are matched by id (``--variant`` picks one); runs with no variant id in
common compare their baselines.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opslab.errors import InvalidInput, NotFound
from opslab.lab.artifacts import read_model
from opslab.lab.comparison import (
    ERROR_RULE,
    Contrast,
    Kind,
    ObjectiveSpec,
    VariantSummary,
    contrast,
    metrics_to_compare,
    objective_of,
    score,
    summarise,
)
from opslab.lab.metric_kinds import metric_kinds
from opslab.lab.records import TrialRecord

RUNS_COMPARISON_SCHEMA_VERSION = 1


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _VariantId(_Lenient):
    id: str


class _Variants(_Lenient):
    baseline: _VariantId
    treatments: list[_VariantId] = Field(default_factory=list)


class _Analysis(_Lenient):
    primary_metrics: list[str] = Field(default_factory=list)
    secondary_metrics: list[str] = Field(default_factory=list)
    metric_kinds: dict[str, Kind] = Field(default_factory=dict)


class _RunConfig(_Lenient):
    """The parts of ``resolved_experiment.json`` a comparison needs: the variants' order, the metrics."""

    variants: _Variants | None = None
    analysis: _Analysis = Field(default_factory=_Analysis)


class RunTrials(BaseModel):
    """A run's finished trials, its variants in plan order (baseline first) and configured metrics."""

    run_dir: Path
    records: list[TrialRecord]
    variants: list[str]
    metrics: list[str]
    kinds: dict[str, Kind] = Field(default_factory=dict)  # as the run's config declares them


def _trial_number(path: Path) -> tuple[int, str]:
    name = path.parent.name
    tail = name.rsplit("_", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 62, name)


def read_run(run_dir: Path, *, field: str = "RUN_DIR") -> RunTrials:
    """A run directory's trial records and config; ``field`` names the argument in errors."""
    if not run_dir.is_dir():
        raise NotFound(
            f"{field}: no run directory at {run_dir}", details={"field": field, "path": str(run_dir)}
        )
    outputs = sorted((run_dir / "trials").glob("*/trial_output.json"), key=_trial_number)
    records = [read_model(p, TrialRecord) for p in outputs]
    if not records:
        raise InvalidInput.for_field(field, f"{run_dir} has no finished trial (trials/*/trial_output.json)")
    config = _RunConfig()
    path = run_dir / "resolved_experiment.json"
    if path.is_file():
        # An unreadable config costs only the variant order and the configured metrics.
        with contextlib.suppress(ValidationError):
            config = _RunConfig.model_validate_json(path.read_bytes())
    seen = list(dict.fromkeys(o.variant_id for o in records))
    planned = (
        [config.variants.baseline.id, *(t.id for t in config.variants.treatments)] if config.variants else []
    )
    variants = [v for v in planned if v in seen] + [v for v in seen if v not in planned]
    metrics = ["success", *config.analysis.primary_metrics, *config.analysis.secondary_metrics]
    return RunTrials(
        run_dir=run_dir,
        records=records,
        variants=variants,
        metrics=list(dict.fromkeys(metrics)),
        kinds=config.analysis.metric_kinds,
    )


class VariantPair(BaseModel):
    """One variant of run A (baseline) against one of run B (treatment), on the shared tasks."""

    variant_a: str
    variant_b: str
    a: VariantSummary
    b: VariantSummary
    contrast: Contrast


class RunsComparison(BaseModel):
    schema_version: int = RUNS_COMPARISON_SCHEMA_VERSION
    run_a: str
    run_b: str
    error_rule: str = ERROR_RULE
    shared_tasks: int
    only_in_a: list[str]
    only_in_b: list[str]
    metric_kinds: dict[str, Kind]
    objective: ObjectiveSpec | None = None
    pairs: list[VariantPair]
    warnings: list[str] = []


def _pairs(a: RunTrials, b: RunTrials, variant: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    if variant is not None:
        for run, field in ((a, "RUN_A"), (b, "RUN_B")):
            if variant not in run.variants:
                raise InvalidInput.for_field(
                    "--variant",
                    f"{field} ({run.run_dir.name}) has no variant {variant!r}: it has {run.variants}",
                )
        return [(variant, variant)], []
    shared = [v for v in a.variants if v in b.variants]
    if shared:
        return [(v, v) for v in shared], []
    note = (
        f"the runs share no variant id: comparing their baselines {a.variants[0]!r} (A) "
        f"and {b.variants[0]!r} (B)"
    )
    return [(a.variants[0], b.variants[0])], [note]


def compare_run_dirs(
    run_a: Path, run_b: Path, *, metrics: Sequence[str] | None = None, variant: str | None = None
) -> RunsComparison:
    """Run B against run A, paired by task (see the module docstring)."""
    a, b = read_run(run_a, field="RUN_A"), read_run(run_b, field="RUN_B")
    tasks_a = {o.task_id for o in a.records}
    tasks_b = {o.task_id for o in b.records}
    shared = tasks_a & tasks_b
    if not shared:
        raise InvalidInput.for_field(
            "task_id",
            f"the runs share no task: {run_a.name} has {len(tasks_a)}, {run_b.name} has {len(tasks_b)}, "
            "none in common; compare runs over the same dataset",
            run_a=str(run_a),
            run_b=str(run_b),
        )
    records = [o for o in (*a.records, *b.records) if o.task_id in shared]
    if metrics:
        known = {m for _, values in score(records) for m in values}
        for m in metrics:
            if m not in known:
                raise InvalidInput.for_field(
                    "--metric", f"no trial of either run reports {m!r} (known: {sorted(known)})"
                )
        chosen = list(dict.fromkeys(metrics))
    else:
        chosen = metrics_to_compare(records, list(dict.fromkeys([*a.metrics, *b.metrics])))
    pairs, warnings = _pairs(a, b, variant)
    only_a, only_b = sorted(tasks_a - shared), sorted(tasks_b - shared)
    if only_a or only_b:
        warnings.append(
            f"{len(only_a)} task(s) only in A and {len(only_b)} only in B are left out; "
            f"{len(shared)} shared task(s) are compared"
        )
    objective, notes = objective_of(records)
    warnings += notes
    scored_a = score([o for o in a.records if o.task_id in shared])
    scored_b = score([o for o in b.records if o.task_id in shared])
    declared = {**b.kinds, **a.kinds}
    for m in sorted(set(a.kinds) & set(b.kinds)):
        if a.kinds[m] != b.kinds[m]:
            warnings.append(f"run A declares {m} a {a.kinds[m]}, run B a {b.kinds[m]}: A's is used")
    kinds, notes = metric_kinds(
        [*scored_a, *scored_b], [*chosen, *(["objective"] if objective else [])], declared
    )
    warnings += notes
    out = []
    for va, vb in pairs:
        ga = [t for t in scored_a if t[0].variant_id == va]
        gb = [t for t in scored_b if t[0].variant_id == vb]
        out.append(
            VariantPair(
                variant_a=va,
                variant_b=vb,
                a=summarise(ga, chosen, kinds),
                b=summarise(gb, chosen, kinds),
                contrast=contrast((f"A:{va}", f"B:{vb}"), ga, gb, chosen, kinds, objective),
            )
        )
    return RunsComparison(
        run_a=str(run_a),
        run_b=str(run_b),
        shared_tasks=len(shared),
        only_in_a=only_a,
        only_in_b=only_b,
        metric_kinds={m: kinds[m] for m in chosen},
        objective=objective,
        pairs=out,
        warnings=warnings,
    )
