"""`opslab autoops run` as a user runs it: each run draws new builds (`--seed` replays them), the seed's plain
`incidents.md` is accepted as knowledge, and the optimizer is selectable (`--optimizer dqn|bandit`), the DQN
refused in one line with its install hint when its extra is missing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from opslab.autoops import dqn_available
from tests.e2e.conftest import clean_env, run_cli


def passes(data: Path, *args: str) -> tuple[list[dict[str, Any]], str]:
    """Four passes' monitor lines, and what stderr says."""
    r = run_cli("autoops", "run", "--builds", "4", "--json", *args, env=clean_env(OPSLAB_DATA_DIR=str(data)))
    assert r.returncode == 0, r.stderr
    return [p["monitor"] for p in json.loads(r.stdout)], r.stderr


def test_a_seed_replays_a_run_and_each_run_draws_new_builds(tmp_path: Path) -> None:
    replayed, said = passes(tmp_path / "a", "--seed", "5")
    assert passes(tmp_path / "b", "--seed", "5")[0] == replayed and "seed" not in said
    runs = [passes(tmp_path / "fresh") for _ in range(2)]  # one database: learning carries over
    seeds = []
    for _, stderr in runs:
        found = re.search(r"seed (\d+) \(--seed \1 replays these builds\)", stderr)
        assert found, stderr
        seeds.append(found.group(1))
    assert seeds[0] != seeds[1] and runs[0][0] != runs[1][0]


def test_the_seeds_plain_incidents_file_is_accepted(tmp_path: Path) -> None:
    knowledge = tmp_path / "data" / "knowledge"
    knowledge.mkdir(parents=True)
    (knowledge / "incidents.md").write_text(
        "# Incidents\n\n## Build OOM\nBuilds die with Out of memory. "
        "Fix: raise the runner memory to 4GB and enable the build cache.\n"
    )
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
    r = run_cli("autoops", "run", "--builds", "3", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("[Responder]") == 3
    found = json.loads(
        run_cli("kb", "search", "builds", "die", "out", "of", "memory", "--json", env=env).stdout
    )
    assert "incidents-build-oom" in [h["id"] for h in found["hits"]]


def test_the_optimizer_is_selectable_and_named_in_the_help(tmp_path: Path) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
    help_text = run_cli("autoops", "run", "--help", env=clean_env(COLUMNS="200")).stdout
    assert "--optimizer" in help_text and "bandit|dqn" in help_text and "opslab[dqn]" in help_text
    r = run_cli("autoops", "run", "--optimizer", "bandit", "--seed", "1", env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("autoops", "run", "--optimizer", "ppo", env=env)
    assert r.returncode == 2 and "--optimizer" in r.stderr


@pytest.mark.skipif(dqn_available(), reason="the dqn extra is installed")
def test_dqn_without_its_extra_is_one_line_with_the_install_hint(tmp_path: Path) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
    for args, extra in ((("--optimizer", "dqn"), {}), ((), {"OPSLAB_AUTOOPS_OPTIMIZER": "dqn"})):
        r = run_cli("autoops", "run", *args, env={**env, **extra})
        assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
        assert r.stderr.strip().count("\n") == 0 and "pip install 'opslab[dqn]'" in r.stderr


@pytest.mark.skipif(not dqn_available(), reason="needs the dqn extra (stable-baselines3)")
def test_dqn_runs_from_the_flag_or_the_setting(tmp_path: Path) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
    r = run_cli("autoops", "run", "--optimizer", "dqn", "--builds", "3", "--seed", "1", env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.count("[Optimizer]") == 3, r.stderr
    r = run_cli(
        "autoops",
        "run",
        "--builds",
        "2",
        "--seed",
        "2",
        "--json",
        env={**env, "OPSLAB_AUTOOPS_OPTIMIZER": "dqn"},
    )
    assert r.returncode == 0, r.stderr
    assert all(0 <= p["optimizer"]["confidence"] <= 1 for p in json.loads(r.stdout))
