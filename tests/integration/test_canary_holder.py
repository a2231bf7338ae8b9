"""A canary's hold names its process; a holder killed with -9 is provably dead at once, and its target is
put back without waiting for the hold to lapse — on SQLite and PostgreSQL, against a real flag service,
with the hold taken by a real subprocess through the runtime's own wiring. What cannot be proved dead
(another host, another boot, another pid namespace) is left to lapse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opslab.canary import HolderProcess, lease_name, read_history
from opslab.canary.holder import is_dead, process_of, this_process
from opslab.config import Settings
from opslab.runtime import Runtime
from tests.flag_service import BASELINE, TOKEN, flag_service, real_service_plan

HOLDER = """
import json, os, sys
from pathlib import Path
from opslab import canary
from opslab.config import Settings
from opslab.runtime import Runtime

data_dir, db_url, raw = sys.argv[1:4]
plan = canary.parse_plan(json.loads(raw))
rt = Runtime.build(Settings(data_dir=Path(data_dir), database_url=db_url, canary_lease_s=600), migrate=True)
target = canary.HttpTarget(plan.target, canary.resolve_secrets(plan, os.environ), seed=plan.seed)
with rt.canary_hold(plan, target, run_key="killed") as held:
    held.get_flags()
    held.set_flags(plan.candidate_flags())
    print("changed", flush=True)
    sys.stdin.read()  # holds until killed
"""


def wait_for(what: Callable[[], bool], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.02)


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def blocked_child() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, text=True
    )


def test_a_process_is_dead_once_killed_zombie_or_reaped_and_alive_before() -> None:
    child = blocked_child()
    try:
        holder = process_of(child.pid)
        assert holder.start_ticks is not None and not is_dead(holder)
        os.kill(child.pid, signal.SIGKILL)
        wait_for(lambda: state_of(child.pid) == "Z", 30, "the killed child never became a zombie")
        assert is_dead(holder)  # killed, not yet reaped
        child.wait(10)
        assert is_dead(holder)
    finally:
        child.kill()
        child.wait(10)


def test_a_reused_pid_is_dead_and_what_cannot_be_seen_from_here_is_not() -> None:
    me = this_process()
    assert not is_dead(me)
    assert me.start_ticks is not None
    assert is_dead(me.model_copy(update={"start_ticks": me.start_ticks + 1}))  # the pid is another process
    unknowable: list[HolderProcess] = [
        me.model_copy(update={"host": me.host + "-elsewhere", "start_ticks": me.start_ticks + 1}),
        me.model_copy(update={"boot_id": "another-boot", "start_ticks": me.start_ticks + 1}),
        me.model_copy(update={"pid_ns": "pid:[1]", "start_ticks": me.start_ticks + 1}),
        me.model_copy(update={"boot_id": None, "start_ticks": me.start_ticks + 1}),
    ]
    assert not any(is_dead(p) for p in unknowable)


def test_recover_puts_back_at_once_the_target_of_a_holder_killed_with_minus_9(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_TOKEN", TOKEN)  # the recovering process reads the plan's token too
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, canary_lease_s=600)
    rt = Runtime.build(settings, migrate=True)
    try:
        with flag_service() as svc:
            plan = real_service_plan(svc.url)
            child = subprocess.Popen(
                [sys.executable, "-c", HOLDER, str(tmp_path / "data"), db_url, json.dumps(plan)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "CANARY_TOKEN": TOKEN},
                text=True,
            )
            try:
                assert child.stdout is not None and child.stdout.readline().strip() == "changed"
                assert svc.flags["cache_mode"] == "warm"
                name = lease_name(svc.url)
                assert (
                    rt.recover_canaries(name=name) == [] and rt.recover_canaries() == []
                )  # alive: left alone
                assert svc.flags["cache_mode"] == "warm"
                child.kill()
                child.wait(10)
            finally:
                child.kill()
                child.wait(10)
            (done,) = rt.recover_canaries()  # the hold would last 10 more minutes: no wait for it
            assert done.restored and done.run_key == "killed" and svc.flags == BASELINE
            assert rt.recover_canaries() == []  # settled: nothing twice
            held = rt.leases.get(name)
            assert held is not None and held.info["phase"] == "settled"
            assert rt.leases.acquire(name, "next-canary", ttl_s=5) is not None  # the target is free
    finally:
        rt.close()
    (row,) = read_history(tmp_path / "data" / "canary" / "history.jsonl")
    assert row.decision == "INTERRUPTED" and row.previous_flags == BASELINE and not row.restore_failed
    assert row.interrupted is not None and f"(its process, pid {child.pid} on " in row.interrupted
