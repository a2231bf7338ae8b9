"""Replays and forks with real subprocess harnesses: new folders, the original trials and the analysis
untouched, the comparison and the checkpoint where they belong; the attestation over the trial records."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslab.errors import Conflict, InvalidInput, NotFound
from opslab.lab import fork_trial, replay_trial, run_experiment
from tests.e2e.conftest import clean_env, run_cli

# Takes `steps` checkpoint steps, from the forked checkpoint's step if there is one; answers with the
# project's answer.txt (change it and a replay differs); latency_ms is the clock (never replays).
HARNESS = textwrap.dedent(
    """
    import argparse, json, os, time
    from pathlib import Path

    ap = argparse.ArgumentParser()
    ap.add_argument("--input")
    ap.add_argument("--output")
    args = ap.parse_args()
    inp = json.loads(Path(args.input).read_text())
    b = inp["bindings"]
    ckpt = inp.get("checkpoint")
    start = json.loads(Path(ckpt["path"]).read_text())["step"] if ckpt else 0
    steps = start + int(b.get("steps", 0))
    Path("ckpt").mkdir(exist_ok=True)
    with open(os.environ["OPSLAB_EVENTS_PATH"], "a") as events:
        for step in range(start + 1, steps + 1):
            Path(f"ckpt/{step}.json").write_text(json.dumps({"step": step}))
            ev = {"type": "checkpoint", "path": f"ckpt/{step}.json", "label": f"s{step}"}
            events.write(json.dumps(ev) + "\\n")
    print("token", os.environ.get("LAB_TEST_TOKEN"), "and sk-" + "a" * 24)
    print("Authorization: Bearer abcdefghijkl")
    Path(args.output).write_text(json.dumps({
        "outcome": "success",
        "metrics": {"steps": steps, "lr": b.get("lr", 0.0), "latency_ms": time.time()},
        "result": {"answer": Path("answer.txt").read_text().strip(), "start": start, "opt": b.get("opt")},
    }))
    """
)


def make_project(tmp_path: Path, **runtime: object) -> Path:
    root = tmp_path / "proj"
    (root / ".lab").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "harness.py").write_text(HARNESS)
    (root / "answer.txt").write_text("42\n")
    (root / "data" / "tasks.jsonl").write_text('{"task_id": "t1"}\n{"task_id": "t2"}\n')
    exp = {
        "experiment": {"id": "ctl", "name": "control"},
        "dataset": {"path": "../data/tasks.jsonl"},
        "design": {"replications": 1, "random_seed": 3, "sanitization_profile": "passthrough"},
        "runtime": {
            "harness": {"command": ["python3", "./harness.py"], "integration_level": "cli_events"},
            "network": {"mode": "full"},
            **runtime,
        },
        "variants": {"baseline": {"id": "base", "bindings": {"steps": 3, "lr": 0.1, "opt": {"name": "sgd"}}}},
        "analysis": {"primary_metrics": ["success"], "secondary_metrics": ["steps"]},
    }
    (root / ".lab" / "experiment.yaml").write_text(yaml.safe_dump(exp))
    return root


def ran(project: Path, env: dict[str, str] | None = None) -> Path:
    run = run_experiment(
        project / ".lab" / "experiment.yaml", env_base=env or dict(os.environ), concurrency=2
    )
    assert run.outcomes == {"success": 2}
    return run.run_dir


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_a_replay_reruns_a_trial_into_its_own_folder_and_says_what_differs(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    run_dir = ran(project)
    trials_before, analysis_before = digests(run_dir / "trials"), digests(run_dir / "analysis")
    same = replay_trial(run_dir, "trial_1", env_base=dict(os.environ), ignore=["metrics.latency_ms"])
    assert same.matches and same.differences == [] and same.ignored == ["metrics.latency_ms"]
    assert same.replay_dir == run_dir / "replays" / "trial_1-1"
    assert same.trial_dir == same.replay_dir / "trials" / "trial_1"
    original_input = json.loads((run_dir / "trials/trial_1/trial_input.json").read_text())
    assert json.loads((same.trial_dir / "trial_input.json").read_text()) == original_input
    assert (same.trial_dir / "trial_output.json").is_file() and (same.trial_dir / "out/stdout.log").is_file()
    assert json.loads((same.replay_dir / "replay.json").read_text())["matches"] is True

    (project / "answer.txt").write_text("43\n")  # the project changed since the run
    changed = replay_trial(run_dir, "trial_1", env_base=dict(os.environ))
    assert not changed.matches and changed.replay_dir.name == "trial_1-2"
    fields = {d.field: d for d in changed.differences}
    assert set(fields) == {"metrics.latency_ms", "result.answer"}
    assert (fields["result.answer"].original, fields["result.answer"].replay) == ("42", "43")
    assert digests(run_dir / "trials") == trials_before, "the original trials are never touched"
    assert digests(run_dir / "analysis") == analysis_before

    code, out = cli(
        "replay", "--run-dir", str(run_dir), "--trial-id", "trial_2", "--ignore", "metrics.latency_ms"
    )
    assert code == 0 and out["replay"]["differences"][0]["field"] == "result.answer"
    with pytest.raises(NotFound, match="no trial 'trial_9'"):
        replay_trial(run_dir, "trial_9", env_base={})
    with pytest.raises(NotFound):
        replay_trial(run_dir, "../trials/trial_1", env_base={})
    (run_dir / "trials/trial_2/trial_output.json").unlink()
    with pytest.raises(Conflict, match="has not finished"):
        replay_trial(run_dir, "trial_2", env_base={})
    code, out = cli("replay", "--run-dir", str(tmp_path), "--trial-id", "trial_1")
    assert code == 4 and out["error"]["code"] == "not_found" and "not a lab run" in out["error"]["message"]


def test_a_fork_starts_from_a_checkpoint_with_bindings_overridden(tmp_path: Path) -> None:
    run_dir = ran(make_project(tmp_path))
    trials_before = digests(run_dir / "trials")
    fork, trial = fork_trial(
        run_dir,
        "trial_1",
        at="s2",
        sets={"lr": 0.5, "opt.name": "adam", "steps": 1},
        env_base=dict(os.environ),
    )
    assert (
        fork.fork_id == "trial_1-fork1"
        and fork.trial_dir == run_dir / "forks/trial_1-fork1/trials/trial_1-fork1"
    )
    assert (
        fork.checkpoint.index == 1
        and fork.checkpoint.label == "s2"
        and fork.checkpoint.reported_path == "ckpt/2.json"
    )
    assert fork.checkpoint.source == run_dir / "trials/trial_1/workspace/ckpt/2.json"
    copied = fork.trial_dir / "out/checkpoint/2.json"
    assert fork.checkpoint.path == str(copied) and json.loads(copied.read_text()) == {"step": 2}
    assert fork.bindings == {"steps": 1, "lr": 0.5, "opt": {"name": "adam"}}
    assert trial.outcome == "success" and trial.metrics["steps"] == 3 and trial.metrics["lr"] == 0.5
    assert trial.result == {"answer": "42", "start": 2, "opt": {"name": "adam"}}
    given = json.loads((fork.trial_dir / "trial_input.json").read_text())
    assert given["checkpoint"] == {"path": str(copied), "label": "s2", "index": 1, "from_trial": "trial_1"}
    assert (
        given["bindings"] == given["variant"]["bindings"] == fork.bindings
        and given["trial_id"] == "trial_1-fork1"
    )
    record = json.loads((fork.trial_dir / "trial_output.json").read_text())
    assert record["forked_from"] == {"trial_id": "trial_1", "checkpoint": "s2", "set": fork.set}
    assert record["trial_id"] == "trial_1-fork1" and record["event_counts"] == {"checkpoint": 1}
    assert (
        json.loads((fork.fork_dir / "fork.json").read_text())["checkpoint"]["sha256"]
        == hashlib.sha256(copied.read_bytes()).hexdigest()
    )
    assert digests(run_dir / "trials") == trials_before

    again, _ = fork_trial(run_dir, "trial_1", at="last", sets={}, env_base=dict(os.environ))
    assert again.fork_id == "trial_1-fork2" and again.checkpoint.label == "s3" and again.bindings["lr"] == 0.1
    code, out = cli(
        "fork", "--run-dir", str(run_dir), "--from-trial", "trial_2", "--at", "0", "--set", "lr=0.01"
    )
    assert code == 0 and out["fork"]["checkpoint"]["label"] == "s1" and out["trial"]["metrics"]["lr"] == 0.01

    code, out = cli("fork", "--run-dir", str(run_dir), "--from-trial", "trial_7", "--at", "last")
    assert code == 4 and "no trial 'trial_7'" in out["error"]["message"]
    code, out = cli("fork", "--run-dir", str(run_dir), "--from-trial", "trial_1", "--at", "s9")
    assert code == 2 and [c["label"] for c in out["error"]["details"]["available"]] == ["s1", "s2", "s3"]
    code, out = cli(
        "fork", "--run-dir", str(run_dir), "--from-trial", "trial_1", "--at", "s1", "--set", "nokey"
    )
    assert code == 2 and out["error"]["details"]["errors"][0]["field"] == "--set"
    (run_dir / "trials/trial_1/workspace/ckpt/3.json").unlink()
    with pytest.raises(NotFound, match=r"checkpoint 2 of trial trial_1 \(ckpt/3.json\) is gone"):
        fork_trial(run_dir, "trial_1", at="last", sets={}, env_base={})
    (run_dir / "trials/trial_1/out/harness_events.jsonl").unlink()
    with pytest.raises(InvalidInput, match="reported no checkpoints"):
        fork_trial(run_dir, "trial_1", at="last", sets={}, env_base={})


def test_the_attestation_is_an_in_toto_statement_over_every_trial_record(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    run_dir = ran(project)
    att = json.loads((run_dir / "attestation.json").read_text())
    assert att["_type"] == "https://in-toto.io/Statement/v1"
    assert att["predicateType"] == "https://opslab.dev/lab-run/v1"
    for subject in att["subject"]:
        record = run_dir / subject["name"]
        assert subject["digest"]["sha256"] == hashlib.sha256(record.read_bytes()).hexdigest()
        assert subject["annotations"]["outcome"] == "success"
    assert [s["name"] for s in att["subject"]] == [f"trials/trial_{i}/trial_output.json" for i in (1, 2)]
    predicate = att["predicate"]
    materials = {m["annotations"]["role"]: m for m in predicate["materials"]}
    assert materials["dataset"]["name"] == "data/tasks.jsonl"
    assert (
        materials["dataset"]["digest"]["sha256"]
        == hashlib.sha256((project / "data/tasks.jsonl").read_bytes()).hexdigest()
    )
    assert materials["harness"]["name"] == "./harness.py"
    resolved = (run_dir / "resolved_experiment.json").read_bytes()
    assert materials["config"]["digest"]["sha256"] == hashlib.sha256(resolved).hexdigest()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert predicate["isolation"] == manifest["isolation"] and predicate["runner"]["version"]
    assert (
        predicate["resolved_experiment_digest"]
        == (run_dir / "resolved_experiment.digest").read_text().strip()
    )
    code, out = cli("validate-schema", "--schema", "attestation", str(run_dir / "attestation.json"))
    assert code == 0 and out["report"]["valid"] is True


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    r = run_cli("lab", *args, "--json", env=env or clean_env(), cwd=cwd, timeout=120)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line of JSON: {r.stdout!r} {r.stderr[-500:]}"
    out = json.loads(lines[0])
    assert out["command"] == args[0] and out["ok"] is (r.returncode == 0)
    return r.returncode, out
