"""The lab runner with real subprocess harnesses: every way a harness can behave, artifacts, DuckDB."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from opslab.errors import InvalidInput, OperationFailed, PolicyViolation
from opslab.lab import (
    TrialRecord,
    build_tables,
    compare,
    execute,
    expand_trials,
    load_outputs,
    prepare_run,
    resolve,
    run_experiment,
)
from opslab.telemetry import AgentRunIn
from tests.conftest import FIXTURES

PROJ = FIXTURES / "lab" / "proj"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(PROJ, dest)
    return dest


def run_all(project: Path, concurrency: int = 4) -> tuple[Path, list[TrialRecord]]:
    resolved = resolve(project / ".lab" / "experiment.yaml")
    run_dir = prepare_run(resolved)
    env = {**os.environ, "OPSLAB_SECRET_FOR_TEST": "must-not-leak"}
    execute(resolved, run_dir, concurrency=concurrency, env_base=env)
    outputs = load_outputs(run_dir, [t.trial_id for t in expand_trials(resolved)])
    variants = [v.id for v in resolved.config.variants.all()]
    build_tables(run_dir, outputs, variants)
    compare(run_dir, outputs, variants, ["success", "accuracy", "latency_ms"])
    return run_dir, outputs


def test_every_harness_behaviour_is_recorded_and_the_run_goes_on(project: Path) -> None:
    run_dir, outputs = run_all(project)
    by_variant: dict[str, list[TrialRecord]] = {}
    for o in outputs:
        by_variant.setdefault(o.variant_id, []).append(o)
    assert len(outputs) == 21
    assert {o.outcome for o in by_variant["normal"]} == {"success"}
    assert [o.outcome for o in by_variant["odd"]] == ["success", "failure", "success"]
    reasons = {v: by_variant[v][0].error_text() or "" for v in ("crash", "hang", "garbage", "silent")}
    assert all(o.outcome == "error" for v in reasons for o in by_variant[v])
    assert "exited with code 3" in reasons["crash"]
    assert "timeout" in reasons["hang"] and "killed" in reasons["hang"]
    assert "not JSON" in reasons["garbage"]
    assert "no trial_output.json" in reasons["silent"]
    assert {o.outcome for o in by_variant["huge"]} == {"success"}
    # 13 MB printed: the first and last MiB kept, the cut said where it was made and in the record.
    huge = by_variant["huge"][0]
    kept = (run_dir / "trials" / huge.trial_id / "out" / "stdout.log").read_bytes()
    assert 2 * 2**20 < len(kept) < 2 * 2**20 + 200 and b"bytes cut here" in kept
    assert huge.notes and huge.notes[0].startswith("stdout.log: 13107400 bytes written")
    first = by_variant["normal"][0]
    tdir = run_dir / "trials" / first.trial_id
    for name in (
        "trial_input.json",
        "trial_output.json",
        "workspace/harness.py",
        "state/pre.json",
        "state/post.json",
        "state/diff.json",
        "out/stdout.log",
    ):
        assert (tdir / name).exists(), name
    assert json.loads((tdir / "state" / "diff.json").read_text())["added"] == ["scratch.txt"]
    assert not (tdir / "workspace" / ".lab").exists()
    assert (tdir / "workspace" / "data").is_dir() and not (
        tdir / "workspace" / "data" / "tasks.jsonl"
    ).exists()
    raw = json.loads((tdir / "out" / "trial_output.json").read_text())
    assert raw["tz"] == "UTC" and raw["env_home"] == str(tdir / "home") and raw["leak"] is None
    assert raw["temp_dir"] == str(tdir / "home")  # the private home is the temporary folder too
    assert first.event_counts == {"step": 1, "tool_call": 1}
    trial_input = json.loads((tdir / "trial_input.json").read_text())
    assert trial_input["task"] == {"task_id": "t1", "a": 1, "b": 1} and trial_input["schema_version"] == 1


def test_tables_load_in_duckdb_and_the_seed_query_runs(project: Path) -> None:
    run_dir, _ = run_all(project)
    analysis = run_dir / "analysis"
    con = duckdb.connect()
    cwd = os.getcwd()
    os.chdir(analysis)
    try:
        con.execute((analysis / "tables" / "load_duckdb.sql").read_text())
    finally:
        os.chdir(cwd)
    rows = con.execute(
        "SELECT variant_id, COUNT(*) as trials, SUM(CASE WHEN outcome = 'success' THEN 1 ELSE 0 END) "
        "as successes FROM trials GROUP BY variant_id ORDER BY variant_id"
    ).fetchall()
    assert ("normal", 3, 3) in rows and ("odd", 3, 2) in rows and ("crash", 3, 0) in rows
    assert con.execute("SELECT COUNT(*) FROM metrics_long WHERE metric = 'success'").fetchone() == (21,)
    assert con.execute(
        "SELECT SUM(count) FROM event_counts_by_variant WHERE variant_id='normal'"
    ).fetchone() == (6,)
    comparison = json.loads((analysis / "comparison.json").read_text())
    odd = next(c for c in comparison["comparisons"] if c["treatment"] == "odd")
    assert odd["metrics"]["success"]["mean_difference"] == pytest.approx(-1 / 3)
    assert odd["pass_fail"]["baseline_only"] == 1 and odd["pass_fail"]["treatment_only"] == 0
    assert comparison["variants"]["normal"]["success_ci"][1] == pytest.approx(1.0)
    assert "## odd vs normal" in (analysis / "report.md").read_text()


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_runner_failure_stops_the_run_and_names_the_trial(project: Path, concurrency: int) -> None:
    exp_path = project / ".lab" / "experiment.yaml"
    exp = exp_path.read_text().split("variants:")[0]
    exp_path.write_text(exp + "variants:\n  baseline: {id: vandal, bindings: {mode: vandal}}\n")
    resolved = resolve(exp_path)
    run_dir = prepare_run(resolved)
    with pytest.raises(OperationFailed, match=r"trial_\d+: FileNotFoundError.*--resume"):
        execute(resolved, run_dir, concurrency=concurrency, env_base=dict(os.environ))
    assert not list(run_dir.glob("trials/*/trial_output.json"))


def test_threads_and_processes_record_the_same_trials(project: Path) -> None:
    exp_path = project / ".lab" / "experiment.yaml"
    exp = exp_path.read_text().split("variants:")[0]
    exp_path.write_text(
        exp + "variants:\n  baseline: {id: normal, bindings: {mode: normal}}\n"
        "  treatments: [{id: odd, bindings: {mode: odd_fails}}, {id: garbage, bindings: {mode: garbage}}]\n"
    )
    _, sequential = run_all(project, concurrency=1)
    _, parallel = run_all(project, concurrency=4)
    keep = {"trial_id", "variant_id", "task_id", "seed", "outcome", "metrics", "error", "event_counts"}
    assert [o.model_dump(include=keep) for o in sequential] == [o.model_dump(include=keep) for o in parallel]


def test_a_pools_records_are_committed_and_attested_exactly_as_their_files_hold_them(project: Path) -> None:
    exp_path = project / ".lab" / "experiment.yaml"
    exp = exp_path.read_text().split("variants:")[0]
    exp_path.write_text(
        exp + "variants:\n  baseline: {id: normal, bindings: {mode: normal}}\n"
        "  treatments: [{id: crash, bindings: {mode: crash}}]\n"
    )
    run = run_experiment(exp_path, env_base=dict(os.environ), concurrency=3)  # forked workers
    files = {p.parent.name: p.read_bytes() for p in run.run_dir.glob("trials/*/trial_output.json")}
    log = (run.run_dir / "records.jsonl").read_bytes().splitlines(keepends=True)
    assert len(files) == 6 and sorted(log) == sorted(files.values())
    attested = json.loads((run.run_dir / "attestation.json").read_text())["subject"]
    assert {s["name"].split("/")[1]: s["digest"]["sha256"] for s in attested} == {
        t: hashlib.sha256(raw).hexdigest() for t, raw in files.items()
    }


class Keep:
    def __init__(self) -> None:
        self.runs: list[AgentRunIn] = []

    def report(self, run: AgentRunIn) -> None:
        self.runs.append(run)


def test_run_experiment_runs_reports_and_analyses(project: Path) -> None:
    exp_path = project / ".lab" / "experiment.yaml"
    exp = exp_path.read_text().split("variants:")[0]
    exp_path.write_text(
        exp + "variants:\n  baseline: {id: normal, bindings: {mode: normal}}\n"
        "  treatments: [{id: odd, bindings: {mode: odd_fails}}, {id: crash, bindings: {mode: crash}}]\n"
    )
    keep, seen = Keep(), []
    run = run_experiment(
        exp_path, env_base=dict(os.environ), concurrency=3, progress=seen.append, reporter=keep
    )
    assert run.status == "completed" and run.total_trials == 9 and run.retried == 0
    assert run.outcomes == {"success": 5, "failure": 1, "error": 3}
    assert (run.reported, run.report_failures) == (9, 0)
    assert run.variants["odd"].successes == 2 and run.variants["crash"].errors == 3
    assert run.tables["trials"] == 9 and (run.run_dir / "analysis" / "comparison.json").is_file()
    assert seen[0].message == "starting" and seen[-1].done == 9 and seen[-1].failed == 3
    assert sorted(r.attributes["lab.trial_id"] for r in keep.runs) == sorted(
        f"trial_{i}" for i in range(1, 10)
    )
    assert {r.run_id.split(".")[0] for r in keep.runs} == {run.run_id}
    assert set(run.envelope()) == {
        "run_id",
        "run_dir",
        "status",
        "total_trials",
        "outcomes",
        "tables",
        "retried",
        "reported",
        "report_failures",
        "report_error",
    }
    with pytest.raises(PolicyViolation, match="network.mode"):
        run_experiment(exp_path, mode="run-experiment", env_base={})
    with pytest.raises(InvalidInput, match="needs a container"):  # no image configured
        run_experiment(exp_path, mode="run-dev", env_base={})
