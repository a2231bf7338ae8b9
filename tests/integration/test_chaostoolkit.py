"""The shipped scenarios are chaostoolkit experiments for real: ``chaos run`` (chaostoolkit, a dev
dependency) runs one against a sandbox world end to end — its steady-state hypothesis met before, its
break applied on the chaos server with the token from the environment (its JSON body arriving as JSON),
the hypothesis judged again after (nobody repairs this world: it deviates) and its rollback played.
``test_chaos_experiments_fail.py`` runs every shipped experiment the same way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from opslab.sandbox import TargetOptions, World, WorldPorts, scenarios_folder

CHAOS = shutil.which("chaos", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(CHAOS is None, reason="chaostoolkit is not installed (uv sync --group dev)")
def test_chaos_run_runs_a_shipped_scenario_end_to_end(tmp_path: Path) -> None:
    assert CHAOS is not None
    with World.start(tmp_path / "data", ports=WorldPorts(0, 0, 0, 0), target=TargetOptions(window_s=2)) as w:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OPSLAB_")},
            "SANDBOX_CHAOS_URL": w.url("chaos"),
            "SANDBOX_TARGET_URL": w.url("target"),
            "SANDBOX_CHAOS_TOKEN": w.chaos_token,
        }
        journal = tmp_path / "journal.json"
        scenario = scenarios_folder() / "db-pool-exhaustion.yaml"
        argv = [CHAOS, "--no-version-check", "run", "--journal-path", str(journal), str(scenario)]
        run = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]  # 1: it deviated
        record = json.loads(journal.read_text())
        assert record["status"] == "completed" and record["steady_states"]["before"]["steady_state_met"]
        assert [r["activity"]["name"] for r in record["run"]] == ["break-db_pool"]
        assert record["run"][0]["status"] == "succeeded" and record["deviated"] is True
        assert [r["activity"]["name"] for r in record["rollbacks"]] == ["stop-db_pool"]
        breaks = httpx.get(
            f"{w.url('chaos')}/api/v1/breaks",
            headers={"Authorization": f"Bearer {w.chaos_token}"},
            timeout=10,
        ).json()["breaks"]
        assert [(b["fault"], b["params"], b["status"]) for b in breaks] == [("db_pool", {}, "stopped")]
        assert breaks[0]["ends_at"] is not None  # its JSON body (duration_s: 6) arrived as JSON
