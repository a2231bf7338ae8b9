"""``compare_run_dirs``: two runs over the same tasks, paired by task, with a run's own statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opslab.errors import InvalidInput, NotFound
from opslab.lab import TrialRecord, compare_run_dirs

TASKS = [f"t{i}" for i in range(6)]


def make_run(
    root: Path,
    name: str,
    outcomes: dict[tuple[str, str], str],
    *,
    metrics: list[str] | None = None,
    kinds: dict[str, str] | None = None,
    latency: float = 10.0,
) -> Path:
    """A run directory as the runner leaves it: ``trials/trial_N/trial_output.json`` and the config."""
    run_dir = root / name
    variants = list(dict.fromkeys(v for v, _ in outcomes))
    config = {
        "variants": {"baseline": {"id": variants[0]}, "treatments": [{"id": v} for v in variants[1:]]},
        "analysis": {
            "primary_metrics": ["success", *(metrics or [])],
            "secondary_metrics": [],
            "metric_kinds": kinds or {},
        },
    }
    run_dir.mkdir(parents=True)
    (run_dir / "resolved_experiment.json").write_text(json.dumps(config))
    for i, ((variant, task), outcome) in enumerate(outcomes.items(), start=1):
        record = TrialRecord(
            trial_id=f"trial_{i}",
            variant_id=variant,
            task_id=task,
            replication=1,
            seed=i,
            outcome=outcome,  # type: ignore[arg-type]
            metrics={"latency_ms": latency + i / 1000} if outcome != "error" else {},
        )
        (run_dir / "trials" / f"trial_{i}").mkdir(parents=True)
        (run_dir / "trials" / f"trial_{i}" / "trial_output.json").write_text(record.model_dump_json())
    return run_dir


def test_a_fix_that_stops_every_error_shows_in_the_paired_test(tmp_path: Path) -> None:
    before = make_run(tmp_path, "before", {("agent", t): "error" for t in TASKS}, metrics=["latency_ms"])
    after = make_run(tmp_path, "after", {("agent", t): "success" for t in TASKS}, metrics=["latency_ms"])
    c = compare_run_dirs(before, after)
    assert c.shared_tasks == 6 and c.only_in_a == [] and c.only_in_b == [] and c.warnings == []
    (pair,) = c.pairs
    assert (pair.variant_a, pair.variant_b) == ("agent", "agent")
    assert (pair.a.errors, pair.b.errors) == (6, 0)
    pf = pair.contrast.pass_fail
    assert (pf.baseline_only, pf.treatment_only) == (0, 6) and pf.p_value < 0.05
    success = pair.contrast.metrics["success"]
    assert (
        success.mean_difference == 1.0
        and success.ci is not None
        and -1 <= success.ci[0] <= success.ci[1] <= 1
    )
    assert "latency_ms" not in pair.contrast.metrics  # errored trials have no latency to pair


def test_tasks_in_one_run_only_are_listed_and_left_out(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", {("agent", t): "success" for t in TASKS[:4]})
    b = make_run(tmp_path, "b", {("agent", t): "failure" for t in TASKS[2:]})
    c = compare_run_dirs(a, b)
    assert c.shared_tasks == 2 and c.only_in_a == ["t0", "t1"] and c.only_in_b == ["t4", "t5"]
    assert any("only in A" in w for w in c.warnings)
    assert c.pairs[0].a.n == 2 and c.pairs[0].contrast.pass_fail.n_tasks == 2


def test_runs_without_a_shared_task_are_refused_naming_the_field(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", {("agent", t): "success" for t in TASKS[:3]})
    b = make_run(tmp_path, "b", {("agent", t): "success" for t in TASKS[3:]})
    with pytest.raises(InvalidInput, match="share no task") as exc:
        compare_run_dirs(a, b)
    assert exc.value.details["errors"][0]["field"] == "task_id"


def test_variants_match_by_id_or_fall_back_to_the_baselines(tmp_path: Path) -> None:
    a = make_run(
        tmp_path, "a", {**{("x", t): "success" for t in TASKS}, **{("y", t): "failure" for t in TASKS}}
    )
    b = make_run(
        tmp_path, "b", {**{("y", t): "success" for t in TASKS}, **{("x", t): "success" for t in TASKS}}
    )
    assert [(p.variant_a, p.variant_b) for p in compare_run_dirs(a, b).pairs] == [("x", "x"), ("y", "y")]
    assert [p.variant_a for p in compare_run_dirs(a, b, variant="y").pairs] == ["y"]
    other = make_run(tmp_path, "other", {("z", t): "success" for t in TASKS})
    c = compare_run_dirs(a, other)
    assert [(p.variant_a, p.variant_b) for p in c.pairs] == [("x", "z")]
    assert any("share no variant id" in w for w in c.warnings)


def test_bad_arguments_name_their_field(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", {("agent", t): "success" for t in TASKS})
    with pytest.raises(InvalidInput) as exc:
        compare_run_dirs(a, a, metrics=["nope"])
    assert exc.value.details["errors"][0]["field"] == "--metric"
    with pytest.raises(InvalidInput) as exc:
        compare_run_dirs(a, a, variant="nope")
    assert exc.value.details["errors"][0]["field"] == "--variant"
    with pytest.raises(NotFound, match="RUN_B"):
        compare_run_dirs(a, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="no finished trial"):
        compare_run_dirs(tmp_path / "empty", a)


def test_metric_kinds_come_from_the_runs_declarations_or_their_values(tmp_path: Path) -> None:
    # Latencies in seconds lie in [0, 1]: undeclared they are a mean, never a share clamped to [0, 1].
    plain = {("agent", t): "success" for t in TASKS}
    a = make_run(tmp_path, "a", plain, metrics=["latency_ms"], latency=0.005)
    b = make_run(tmp_path, "b", plain, metrics=["latency_ms"], latency=0.004)
    c = compare_run_dirs(a, b)
    assert c.metric_kinds == {"success": "rate", "latency_ms": "mean"} and c.warnings == []
    assert "kept" not in c.pairs[0].contrast.metrics["latency_ms"].method
    a2 = make_run(
        tmp_path, "a2", plain, metrics=["latency_ms"], latency=0.005, kinds={"latency_ms": "fraction"}
    )
    b2 = make_run(tmp_path, "b2", plain, metrics=["latency_ms"], latency=0.004, kinds={"latency_ms": "mean"})
    c = compare_run_dirs(a2, b2)
    assert c.metric_kinds["latency_ms"] == "fraction"
    assert c.warnings == ["run A declares latency_ms a fraction, run B a mean: A's is used"]
