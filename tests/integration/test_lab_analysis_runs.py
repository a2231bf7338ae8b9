"""A run's analysis with real harness subprocesses: a trainer workload end to end, the seed's DuckDB
loader as the seed runs it, and ``opslab lab compare`` / ``opslab lab query`` as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslab.errors import InvalidInput
from opslab.lab import query_run, run_experiment
from tests.conftest import FIXTURES

OPSLAB = str(Path(sys.executable).parent / "opslab")
TASKS = [{"task_id": f"t{i}", "a": i, "b": 1} for i in range(6)]

TRAINER = """\
import argparse, json
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--input", required=True)
ap.add_argument("--output", required=True)
args = ap.parse_args()
inp = json.loads(Path(args.input).read_text())
lr = inp["bindings"]["lr"]
difficulty = 1.0 + 0.1 * inp["task"]["a"]
noise = (inp["replication"] % 3) * 0.01
val_loss = difficulty * (0.5 if lr == 0.1 else 0.3) + noise  # the lower learning rate trains better
Path(args.output).write_text(json.dumps({
    "outcome": "success",
    "objective": {"name": "val_loss", "value": val_loss, "direction": "minimize"},
    "train_loss": val_loss * 0.8,
    "val_acc": 1.0 - val_loss / 2,
    "wall_time_s": 2.0 + inp["task"]["a"],
    "metrics": {},
}))
"""


def project(tmp_path: Path, variants: dict[str, Any], *, name: str = "proj", trainer: bool = False) -> Path:
    """The lab fixture project with six tasks and the given variants (and a trainer harness if asked)."""
    dest = tmp_path / name
    shutil.copytree(FIXTURES / "lab" / "proj", dest)
    (dest / "data" / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    exp = yaml.safe_load((dest / ".lab" / "experiment.yaml").read_text())
    exp["variants"] = variants
    exp["design"]["trial_timeout_s"] = 30
    if trainer:
        (dest / "trainer.py").write_text(TRAINER)
        exp["experiment"]["workload_type"] = "trainer"
        exp["runtime"]["harness"]["command"] = ["python3", "./trainer.py"]
        exp["design"]["replications"] = 2
        exp["analysis"] = {"primary_metrics": ["success"], "secondary_metrics": []}
    (dest / ".lab" / "experiment.yaml").write_text(yaml.safe_dump(exp))
    return dest


def run(proj: Path) -> Path:
    return run_experiment(proj / ".lab" / "experiment.yaml", env_base=dict(os.environ), concurrency=4).run_dir


def cli(*args: str, cwd: Path) -> tuple[int, dict[str, Any]]:
    r = subprocess.run([OPSLAB, "lab", *args, "--json"], cwd=cwd, capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line of JSON: {r.stdout!r} {r.stderr[-800:]}"
    return r.returncode, json.loads(lines[0])


def test_a_trainer_run_reaches_metrics_long_and_the_comparison_honours_the_direction(tmp_path: Path) -> None:
    proj = project(
        tmp_path,
        {
            "baseline": {"id": "lr_high", "bindings": {"lr": 0.1}},
            "treatments": [{"id": "lr_low", "bindings": {"lr": 0.01}}],
        },
        trainer=True,
    )
    run_dir = run(proj)
    metrics = query_run(
        run_dir, "SELECT metric, COUNT(*) AS n FROM metrics_long GROUP BY metric ORDER BY metric"
    ).records()
    assert metrics == [
        {"metric": m, "n": 24}
        for m in ("objective", "success", "train_loss", "val_acc", "val_loss", "wall_time_s")
    ]
    same = query_run(
        run_dir,
        "SELECT COUNT(*) AS n FROM metrics_long a JOIN metrics_long b USING (trial_id) "
        "WHERE a.metric = 'objective' AND b.metric = 'val_loss' AND a.value = b.value",
    )
    assert same.rows == [[24]]
    comparison = json.loads((run_dir / "analysis" / "comparison.json").read_text())
    assert comparison["objective"] == {"name": "val_loss", "direction": "minimize"}
    (contrast,) = comparison["comparisons"]
    objective = contrast["objective"]
    assert objective["better"] == "treatment" and objective["improvement"] > 0
    assert objective["improvement_ci"][0] > 0 and objective["treatment_mean"] < objective["baseline_mean"]
    assert {"objective", "train_loss", "val_acc", "wall_time_s"} <= set(contrast["metrics"])
    assert contrast["metrics"]["objective"]["mean_difference"] < 0  # lower loss: better, for minimize
    assert comparison["metric_kinds"]["val_acc"] == "fraction"
    lo, hi = comparison["variants"]["lr_low"]["metrics"]["val_acc"]["ci"]
    assert 0.0 <= lo <= hi <= 1.0
    assert (
        "Objective val_loss (minimize): treatment better" in (run_dir / "analysis" / "report.md").read_text()
    )


def test_the_written_loader_works_from_the_analysis_folder_as_the_seed_runs_it(tmp_path: Path) -> None:
    run_dir = run(project(tmp_path, {"baseline": {"id": "normal", "bindings": {"mode": "normal"}}}))
    script = (
        "import duckdb\n"
        "con = duckdb.connect('agentlab.duckdb')\n"
        "con.execute(open('tables/load_duckdb.sql').read())\n"
        'print(con.execute("SELECT variant_id, COUNT(*), '
        "SUM(CASE WHEN outcome = 'success' THEN 1 ELSE 0 END) "
        'FROM trials GROUP BY variant_id").fetchall())\n'
    )
    r = subprocess.run(
        [sys.executable, "-c", script], cwd=run_dir / "analysis", capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[('normal', 6, 6)]"
    assert (run_dir / "analysis" / "agentlab.duckdb").is_file()


def test_compare_and_query_from_the_cli(tmp_path: Path) -> None:
    before = run(
        project(tmp_path, {"baseline": {"id": "agent", "bindings": {"mode": "crash"}}}, name="before")
    )
    after = run(
        project(tmp_path, {"baseline": {"id": "agent", "bindings": {"mode": "normal"}}}, name="after")
    )
    code, out = cli("compare", str(before), str(after), cwd=tmp_path)
    assert code == 0 and out["ok"] is True and out["command"] == "compare"
    (pair,) = out["comparison"]["pairs"]
    assert pair["a"]["errors"] == 6 and pair["b"]["errors"] == 0
    assert (
        pair["contrast"]["pass_fail"]["treatment_only"] == 6
        and pair["contrast"]["pass_fail"]["p_value"] < 0.05
    )
    human = subprocess.run(
        [OPSLAB, "lab", "compare", str(before), str(after)], capture_output=True, text=True, timeout=120
    )
    assert human.returncode == 0 and "B − A" in human.stdout and "success" in human.stdout

    elsewhere = project(tmp_path, {"baseline": {"id": "agent", "bindings": {"mode": "normal"}}}, name="other")
    (elsewhere / "data" / "tasks.jsonl").write_text(json.dumps({"task_id": "zz", "a": 1, "b": 1}) + "\n")
    code, out = cli("compare", str(before), str(run(elsewhere)), cwd=tmp_path)
    assert code == 2 and out["ok"] is False and out["command"] == "compare"
    assert (
        out["error"]["code"] == "invalid_input" and out["error"]["details"]["errors"][0]["field"] == "task_id"
    )

    code, out = cli("query", str(after), "SELECT variant_id, n, errors FROM variant_summary", cwd=tmp_path)
    assert code == 0 and out == {
        "ok": True,
        "command": "query",
        "columns": ["variant_id", "n", "errors"],
        "rows": [{"variant_id": "agent", "n": 6, "errors": 0}],
    }
    code, out = cli("query", str(after), "SELEC nonsense", cwd=tmp_path)
    assert code == 2 and out["ok"] is False and out["error"]["details"]["errors"][0]["field"] == "sql"
    bad = subprocess.run(
        [OPSLAB, "lab", "query", str(after), "SELECT nope FROM trials"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "nope" in bad.stderr
    with pytest.raises(InvalidInput):
        query_run(after, "   ")
