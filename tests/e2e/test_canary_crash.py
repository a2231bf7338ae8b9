"""A canary killed with -9 mid-window leaves its target changed; its hold on the target lapses and the
target is put back by whoever looks next: the service (within about one lease period), the next canary
on that target, or `opslab canary recover` — each writing an INTERRUPTED history row saying so. A second
canary on a target a live one holds is refused. A standalone canary whose process is provably gone (on
this host) is put back at once by the next canary or `opslab canary recover`, with no wait for its hold
to lapse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from opslab.canary import read_history
from tests.canary_support import documented_exit_code
from tests.e2e.conftest import OPSLAB, Service, clean_env, run_cli
from tests.flag_service import BASELINE, TOKEN, RemoteFlagService, flag_service, real_service_plan

LEASE_S = "3"
LONG_LEASE_S = "600"  # the hold outlasts the test: only its holder's death can free the target


def wait_for(what: Callable[[], bool], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def start_canary(tmp_path: Path, env: dict[str, str], svc: RemoteFlagService) -> subprocess.Popen[str]:
    plan = real_service_plan(svc.url, experiment={"window_sec": 8.0, "rounds": 3, "qps": 20.0})
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    return subprocess.Popen(
        [OPSLAB, "canary", "run", "--config", "plan.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_in_b_window(proc: subprocess.Popen[str], svc: RemoteFlagService, *, watched: bool = False) -> None:
    """Kill the canary with -9 while the candidate is applied. ``watched``: a service looks after the
    canaries' holds and may put the target back as soon as the process is provably gone, before the flags
    are read here; the history row then says who put it back."""
    wait_for(lambda: svc.flags.get("cache_mode") == "warm", 90, "the B window never started")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    if proc.returncode != -signal.SIGKILL:  # it ended by itself first (its hold lapsed on a starved machine?)
        said = proc.stderr.read()[-2000:] if proc.stderr else ""
        raise AssertionError(f"the canary ended before the kill, exit {proc.returncode}: {said}")
    if not watched:
        assert svc.flags != BASELINE, "the kill left the candidate applied, as it must for this drill"


def rows(data: Path) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in read_history(data / "canary" / "history.jsonl")]


def test_the_service_puts_back_the_target_of_a_canary_killed_mid_window(
    tmp_path: Path, start_service: Callable[..., Service]
) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), CANARY_TOKEN=TOKEN, OPSLAB_CANARY_LEASE_S=LEASE_S)
    with flag_service() as svc:
        svc_api = start_service(env=env)  # the same database: it looks after canaries' holds
        proc = start_canary(tmp_path, env, svc)
        kill_in_b_window(proc, svc, watched=True)
        killed = time.monotonic()
        wait_for(lambda: svc.flags == BASELINE, 60, "the baseline flags were never put back")
        # Within one lease period of the last renewal (renewals every third of it), plus the service's look.
        assert time.monotonic() - killed < 2 * float(LEASE_S) + 5
        wait_for(lambda: bool(rows(tmp_path / "data")), 30, "no history row for the recovery")
        svc_api.stop()
    row = rows(tmp_path / "data")[-1]
    assert row["decision"] == "INTERRUPTED" and "canary-recovery" in row["interrupted"]
    assert row["previous_flags"] == BASELINE and row["restore_failed"] is False


def test_a_second_canary_is_refused_while_one_holds_and_recover_puts_the_target_back(tmp_path: Path) -> None:
    # A hold that cannot lapse while its holder lives, however starved the machine: the refusal is the
    # holder's doing, and recover frees the target because the holder is provably gone, not by waiting.
    env = clean_env(
        OPSLAB_DATA_DIR=str(tmp_path / "data"), CANARY_TOKEN=TOKEN, OPSLAB_CANARY_LEASE_S=LONG_LEASE_S
    )
    with flag_service() as svc:
        proc = start_canary(tmp_path, env, svc)
        wait_for(lambda: svc.flags.get("cache_mode") == "warm", 90, "the B window never started")
        r = run_cli("canary", "run", "--config", "plan.yaml", "--json", env=env, cwd=tmp_path)
        assert "another canary" in (r.stdout + r.stderr)
        assert r.returncode == documented_exit_code("another canary holds the target")
        kill_in_b_window(proc, svc)

        def recovered() -> bool:
            out = run_cli("canary", "recover", "--json", env=env)
            assert out.returncode == 0, out.stderr
            return bool(json.loads(out.stdout))

        wait_for(recovered, 60, "recover never put back the target of the killed canary")
        assert svc.flags == BASELINE
        again = run_cli("canary", "recover", "--json", env=env)
        assert json.loads(again.stdout) == []  # settled: nothing twice
    history = rows(tmp_path / "data")
    assert [r["decision"] for r in history] == ["INTERRUPTED"] and history[0]["previous_flags"] == BASELINE


def test_the_next_canary_puts_back_the_target_before_it_reads_its_baseline(tmp_path: Path) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), CANARY_TOKEN=TOKEN, OPSLAB_CANARY_LEASE_S=LEASE_S)
    with flag_service() as svc:
        kill_in_b_window(start_canary(tmp_path, env, svc), svc)
        short = real_service_plan(svc.url, experiment={"window_sec": 1.0, "rounds": 1, "qps": 20.0})
        (tmp_path / "short.yaml").write_text(yaml.safe_dump(short))
        runs: list[subprocess.CompletedProcess[str]] = []

        def next_canary_ran() -> bool:
            r = run_cli("canary", "run", "--config", "short.yaml", "--json", env=env, cwd=tmp_path)
            runs.append(r)
            return "another canary" not in (r.stdout + r.stderr)  # refused while the hold was live

        wait_for(next_canary_ran, 90, "the killed canary's hold never lapsed")
        assert svc.flags == BASELINE or json.loads(runs[-1].stdout)["applied"]
    history = rows(tmp_path / "data")
    assert [r["decision"] for r in history][0] == "INTERRUPTED" and len(history) == 2
    assert history[1]["previous_flags"] == BASELINE  # its baseline is the real one, not the dead run's B


def test_the_next_canary_puts_back_at_once_the_target_of_a_canary_killed_with_minus_9(tmp_path: Path) -> None:
    env = clean_env(
        OPSLAB_DATA_DIR=str(tmp_path / "data"), CANARY_TOKEN=TOKEN, OPSLAB_CANARY_LEASE_S=LONG_LEASE_S
    )
    with flag_service() as svc:
        killed = start_canary(tmp_path, env, svc)
        kill_in_b_window(killed, svc)
        short = real_service_plan(svc.url, experiment={"window_sec": 1.0, "rounds": 1, "qps": 20.0})
        (tmp_path / "short.yaml").write_text(yaml.safe_dump(short))
        r = run_cli("canary", "run", "--config", "short.yaml", "--json", env=env, cwd=tmp_path)
        assert "another canary" not in r.stdout + r.stderr, r.stderr  # one try: not refused, not waiting
        assert svc.flags == BASELINE or json.loads(r.stdout)["applied"]
    history = rows(tmp_path / "data")
    assert [r["decision"] for r in history][0] == "INTERRUPTED" and len(history) == 2
    assert f"died mid-run (its process, pid {killed.pid} on " in history[0]["interrupted"]
    assert history[0]["previous_flags"] == BASELINE and history[0]["restore_failed"] is False
    assert history[1]["previous_flags"] == BASELINE  # its baseline is the real one, not the dead run's B


def test_recover_puts_back_at_once_a_canary_killed_with_minus_9_and_leaves_a_live_one_alone(
    tmp_path: Path,
) -> None:
    env = clean_env(
        OPSLAB_DATA_DIR=str(tmp_path / "data"), CANARY_TOKEN=TOKEN, OPSLAB_CANARY_LEASE_S=LONG_LEASE_S
    )
    with flag_service() as svc:
        proc = start_canary(tmp_path, env, svc)
        wait_for(lambda: svc.flags.get("cache_mode") == "warm", 90, "the B window never started")
        alive = run_cli("canary", "recover", "--json", env=env)
        assert alive.returncode == 0 and json.loads(alive.stdout) == [], alive.stderr
        assert proc.poll() is None  # the live canary holds on
        kill_in_b_window(proc, svc)
        out = run_cli("canary", "recover", "--json", env=env)  # once: the hold has minutes left
        assert out.returncode == 0, out.stderr
        (done,) = json.loads(out.stdout)
        assert done["restored"] is True and svc.flags == BASELINE
        again = run_cli("canary", "recover", "--json", env=env)
        assert json.loads(again.stdout) == []  # settled: nothing twice
    (row,) = rows(tmp_path / "data")
    assert row["decision"] == "INTERRUPTED" and f"pid {proc.pid} on " in row["interrupted"]
    assert row["previous_flags"] == BASELINE
