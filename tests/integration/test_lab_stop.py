"""The control channel of an `sdk_control` harness, as a real runner gives it: the control file exists when
the first trial starts (in the sandbox too), and `opslab lab stop` is a signal the harness sees — the
running trials end at their own safe point, none starts again, the run ends `stopped`, and `resume` runs
the rest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES
from tests.e2e.conftest import OPSLAB, clean_env
from tests.integration.test_lab_control_derived import cli
from tests.integration.test_lab_control_signals import envelope, ledger_of, recorded, wait_for
from tests.integration.test_lab_isolation import needs_bwrap, needs_netns

TRIALS = 6

# Reads the control file at its start; while `hold` exists, waits for the run to be stopped, then ends
# early as a cooperative harness would (outcome skipped, saying why).
HARNESS = """
import argparse, json, os, time
from pathlib import Path
ap = argparse.ArgumentParser(); ap.add_argument("--input"); ap.add_argument("--output"); a = ap.parse_args()
inp = json.loads(Path(a.input).read_text())
control = os.environ["OPSLAB_CONTROL_PATH"]
def state():
    return json.loads(Path(control).read_text())["state"]
at_start = state()
b = inp["bindings"]
if b.get("ledger"):
    started = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]  # as the fixture harness
    with open(b["ledger"], "a") as f:
        f.write(f"start {inp['trial_id']} {os.getpid()} {started}\\n")
outcome, seen = "success", at_start
deadline = time.monotonic() + 60
while b.get("hold") and os.path.exists(b["hold"]) and time.monotonic() < deadline:
    seen = state()
    if seen == "stopped":
        outcome = "skipped"
        break
    time.sleep(0.05)
result = {"control_at_start": at_start, "last_seen": seen, "path": control}
Path(a.output).write_text(json.dumps({"outcome": outcome, "result": result}))
"""


def project(tmp_path: Path, network: str, bindings: dict[str, str]) -> Path:
    proj = tmp_path / "proj"
    shutil.copytree(FIXTURES / "lab" / "proj", proj)
    (proj / "control_harness.py").write_text(HARNESS)
    exp_path = proj / ".lab" / "experiment.yaml"
    exp = yaml.safe_load(exp_path.read_text())
    exp["runtime"]["harness"] = {
        "command": ["python3", "./control_harness.py"],
        "integration_level": "sdk_control",
    }
    exp["runtime"]["network"] = {"mode": network, "allowed_hosts": []}
    exp["variants"] = {"baseline": {"id": "only", "bindings": bindings}}
    exp["design"].update(replications=2, trial_timeout_s=90)
    exp_path.write_text(yaml.safe_dump(exp))
    return proj


@pytest.mark.parametrize("network", ["full", pytest.param("none", marks=[needs_netns, needs_bwrap])])
def test_the_control_file_is_there_when_the_first_trial_starts(tmp_path: Path, network: str) -> None:
    proj = project(tmp_path, network, {})
    code, out = cli("run", ".lab/experiment.yaml", "--concurrency", "1", cwd=proj)
    assert code == 0 and out["run"]["outcomes"] == {"success": TRIALS}, out
    run_dir = Path(out["run"]["run_dir"])
    first = json.loads((run_dir / "trials" / "trial_1" / "trial_output.json").read_text())
    assert first["result"]["control_at_start"] == "running"
    control = json.loads((run_dir / "control.json").read_text())
    assert control["state"] == "running" and control["updated_at"]


def test_stop_ends_the_running_trials_at_their_safe_point_and_starts_no_more(tmp_path: Path) -> None:
    ledger, hold = tmp_path / "ledger.txt", tmp_path / "hold"
    hold.write_text("")
    proj = project(tmp_path, "full", {"ledger": str(ledger), "hold": str(hold)})
    runner = subprocess.Popen(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--concurrency", "2", "--json"],
        cwd=proj,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_for(lambda: len(ledger_of(ledger)[0]) == 2)  # two trials hold, waiting for a signal
    run_dir = next((proj / ".lab" / "runs").iterdir())
    code, out = cli("stop", "--run-dir", str(run_dir), "--reason", "enough")
    assert code == 0 and out["control"]["state"] == "stopped" and out["control"]["runner_active"] is True
    code, out = envelope(runner)
    assert code == 0 and out["run"]["status"] == "stopped", out
    assert out["run"]["outcomes"] == {"skipped": 2}
    assert len(ledger_of(ledger)[0]) == 2 and len(recorded(proj)) == 2  # none started after the stop
    for trial in recorded(proj):
        record = json.loads((run_dir / "trials" / trial / "trial_output.json").read_text())
        assert record["result"]["last_seen"] == "stopped"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "stopped"
    assert json.loads((run_dir / "control.json").read_text())["reason"] == "enough"

    hold.unlink()  # the rest need not wait: resume runs them to the end
    code, out = cli("resume", "--run-dir", str(run_dir), "--concurrency", "2")
    assert code == 0 and out["run"]["status"] == "completed"
    assert out["run"]["outcomes"] == {"skipped": 2, "success": TRIALS - 2}
    for command in ("stop", "pause", "resume"):
        code, out = cli(command, "--run-dir", str(run_dir))
        assert code == 5 and out["error"]["code"] == "conflict"


def test_a_run_nobody_holds_is_marked_stopped_at_once(tmp_path: Path) -> None:
    proj = project(tmp_path, "full", {})
    code, out = cli("run", ".lab/experiment.yaml", cwd=proj)
    run_dir = Path(out["run"]["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "interrupted"  # as a runner killed mid-run leaves it
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / "trials" / "trial_6" / "trial_output.json").unlink()
    code, out = cli("stop", "--run-dir", str(run_dir))
    assert code == 0 and out["control"]["runner_active"] is False and out["control"]["status"] == "stopped"
    code, out = cli("stop", "--run-dir", str(run_dir))
    assert code == 0 and out["control"]["changed"] is False
    code, out = cli("run", ".lab/experiment.yaml", "--resume", run_dir.name, cwd=proj)
    assert code == 0 and out["run"]["status"] == "completed" and out["run"]["outcomes"] == {"success": TRIALS}
    assert json.loads((run_dir / "control.json").read_text())["state"] == "running"
