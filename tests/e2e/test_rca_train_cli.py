"""`opslab rca train` and `opslab rca eval --model` as a user runs them, on every supported format: fit on
one system's labelled runs, score on another's, and bad input refused with nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES
from tests.e2e.conftest import clean_env, run_cli

AGENTRX = FIXTURES / "agentrx"
TAU = (AGENTRX / "tau_retail" / "tau_dataset_failed.json", AGENTRX / "ground_truth" / "tau_ground_truth.json")
MAGENTIC = (AGENTRX / "magentic_dataset", AGENTRX / "ground_truth" / "magentic_one_ground_truth.json")
FIGURES = {
    "n",
    "step_accuracy",
    "step_accuracy_pm1",
    "agent_accuracy",
    "insufficient_rate",
    "confident_wrong_rate",
}


def _cli(tmp_path: Path, *args: str) -> Any:
    r = run_cli(*args, env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "d")), timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if "--json" in args else r.stdout


def test_fit_on_one_system_and_score_on_the_other(tmp_path: Path) -> None:
    model = tmp_path / "tau.json"
    summary = _cli(
        tmp_path, "rca", "train", "--format", "tau-bench", "--ground-truth", str(TAU[1]), str(TAU[0]),
        "--out", str(model), "--json",
    )  # fmt: skip
    assert summary["runs"] == 8 and summary["labelled"] == 8 and 0 < summary["fitted_on"] <= 8
    assert summary["calibration"] == "held-out-folds" and summary["out"] == str(model)
    data = json.loads(model.read_text())
    assert data["schema_version"] == 2 and data["format"] == "tau-bench" and data["step_weights"]
    got = _cli(
        tmp_path, "rca", "eval", "--format", "magentic", "--ground-truth", str(MAGENTIC[1]), str(MAGENTIC[0]),
        "--model", str(model), "--json",
    )  # fmt: skip
    assert set(got) >= FIGURES and got["n"] == 8 and got["model"] == str(model)
    table = _cli(
        tmp_path, "rca", "eval", "--format", "magentic", "--ground-truth", str(MAGENTIC[1]), str(MAGENTIC[0]),
        "--model", str(model),
    )  # fmt: skip
    assert "agent_accuracy" in table and "tau.json" in table


def _who_and_when(folder: Path) -> Path:
    """Two Who&When-style files (labels inside, mistake_step counted from 0)."""
    folder.mkdir()
    history = [
        {"role": "assistant", "name": "Planner_Expert", "content": "Plan: 1) load the sheet 2) count rows."},
        {"role": "assistant", "name": "Coder_Expert", "content": "```python\nprint(len(rows))\n```"},
        {"role": "user", "name": "Computer_terminal", "content": "exitcode: 1\nTraceback (most recent call"},
        {"role": "assistant", "name": "Coder_Expert", "content": "I will assume the file has 12 rows."},
        {"role": "assistant", "name": "Planner_Expert", "content": "TERMINATE"},
    ]
    for i, (step, agent) in enumerate(((3, "Coder_Expert"), (1, "Coder_Expert"))):
        record = {"history": history, "mistake_step": str(step), "mistake_agent": agent, "is_correct": False}
        (folder / f"{i}.json").write_text(json.dumps({**record, "ground_truth": "14"}))
    return folder


def test_who_and_when_files_carry_their_own_labels(tmp_path: Path) -> None:
    folder = _who_and_when(tmp_path / "ww")
    model = tmp_path / "ww.json"
    summary = _cli(
        tmp_path, "rca", "train", "--format", "who-and-when", str(folder), "--out", str(model), "--json"
    )
    assert summary["labelled"] == 2 and summary["systems"] == {"who-and-when": 2}
    got = _cli(
        tmp_path, "rca", "eval", "--format", "who-and-when", str(folder), "--model", str(model), "--json"
    )
    assert got["n"] == 2 and set(got) >= FIGURES
    imported = _cli(tmp_path, "runs", "import", "--format", "who-and-when", str(folder), "--json")
    assert imported == {"format": "who-and-when", "runs": 2, "ok": 2, "failed": 0}


def test_opslab_runs_with_a_plain_label_list(tmp_path: Path, run_001: dict[str, Any]) -> None:
    runs = tmp_path / "runs.jsonl"
    turns = [
        ("user", "Where is my order?"),
        ("assistant", "Looking it up."),
        ("tool", "Error: order not found"),
    ]
    lines = []
    for i in range(3):
        steps = [
            {"step_id": f"step-{n}", "name": f"{who} message", "status": "success", "agent": who,
             "output_summary": text, "started_at": "2025-01-01T00:00:00Z"}
            for n, (who, text) in enumerate(turns, start=1)
        ]  # fmt: skip
        lines.append(
            json.dumps(
                {**run_001, "run_id": f"r{i}", "steps": steps, "tool_calls": [], "guardrail_events": []}
            )
        )
    runs.write_text("\n".join(lines) + "\n")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([{"run_id": f"r{i}", "step": 2, "agent": "assistant"} for i in range(3)]))
    model = tmp_path / "mine.json"
    summary = _cli(
        tmp_path, "rca", "train", "--format", "opslab", "--ground-truth", str(labels), str(runs),
        "--out", str(model), "--json",
    )  # fmt: skip
    assert summary["runs"] == 3 and summary["fitted_on"] == 3


def test_bad_input_is_refused_and_leaves_no_model(tmp_path: Path) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "d"))
    out = tmp_path / "m.json"
    tau = ("--ground-truth", str(TAU[1]), str(TAU[0]))
    cases = [
        (("--format", "nope", *tau, "--out", str(out)), "--format"),
        (("--format", "magentic", str(MAGENTIC[0]), "--out", str(out)), "--ground-truth"),  # no labels
        (
            ("--format", "magentic", "--ground-truth", str(TAU[1]), str(MAGENTIC[0]), "--out", str(out)),
            "no run",
        ),
        (("--format", "tau-bench", *tau, "--out", str(tmp_path / "none" / "m.json")), "--out"),
        (
            (
                "--format",
                "tau-bench",
                "--ground-truth",
                str(tmp_path / "x.json"),
                str(TAU[0]),
                "--out",
                str(out),
            ),
            "x.json",
        ),
    ]
    for args, said in cases:
        r = run_cli("rca", "train", *args, env=env)
        assert r.returncode == 2 and said in r.stderr, (args, r.stderr)
    assert not out.exists() and not list(tmp_path.glob(".m.json*"))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{}")
    r = run_cli("rca", "eval", "--format", "tau-bench", *tau, "--model", str(garbage), "--json", env=env)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["details"]["errors"][0]["field"] == "--model"
