"""Faults that do not come from opslab's chaos server, each injected the way it happens: a process
killed or stopped by a signal, another process eating memory, a lock on the target's database file, a
full volume, a slow network path, busy CPUs. For each the responder detects it, names it, and fixes it or
escalates with the reason, with one incident for the fault and no action that cannot help."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from opslab.sandbox import TargetOptions, WorldPorts
from opslab.sandbox.harm import DelayProxy, busy_cpus
from tests.integration.responder_outside import (
    WINDOW_S,
    memory_hog,
    watched_world,
)
from tests.ports import free_port


def test_the_dependency_killed_by_hand_is_restarted(tmp_path: Path) -> None:
    with watched_world(tmp_path) as w:
        w.warm_up()
        os.kill(w.world.pid("dependency"), signal.SIGKILL)
        incident = w.finished("the dependency killed with SIGKILL")
        assert incident.status == "resolved", incident.recommendation
        assert incident.category == "dependency_outage"
        assert [a.action for a in incident.actions] == ["restart-dependency"]
        assert w.healthy() and len(w.store.list()) == 1


def test_the_target_killed_with_sigkill_is_restarted(tmp_path: Path) -> None:
    with watched_world(tmp_path) as w:
        w.warm_up()
        old = w.world.pid("target")
        os.kill(old, signal.SIGKILL)
        incident = w.finished("the target killed with SIGKILL")
        assert incident.status == "resolved", incident.recommendation
        assert incident.category == "target_down"
        assert [a.action for a in incident.actions] == ["restart-target"]
        assert w.world.pid("target") != old and w.healthy()
        # the outage's missing readings are not zeros: no memory "trend" afterwards, no second incident
        for _ in range(5):
            w.poll()
        assert len(w.store.list()) == 1


def test_the_target_hung_with_sigstop_is_restarted(tmp_path: Path) -> None:
    with watched_world(tmp_path) as w:
        w.warm_up()
        old = w.world.pid("target")
        os.kill(old, signal.SIGSTOP)
        try:
            incident = w.finished("the target stopped with SIGSTOP")
        finally:
            if w.world.pid("target") == old:
                os.kill(old, signal.SIGCONT)
        assert incident.status == "resolved", incident.recommendation
        assert incident.category == "target_down"
        assert "stopped" in " ".join(s.message for s in incident.steps)
        assert [a.action for a in incident.actions] == ["restart-target"] and w.world.pid("target") != old


def test_an_external_lock_on_the_database_is_escalated_without_a_harmful_action(tmp_path: Path) -> None:
    with watched_world(tmp_path) as w:
        w.warm_up()
        pid = w.world.pid("target")
        lock = sqlite3.connect(tmp_path / "sandbox" / "target" / "orders.db", timeout=10)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            incident = w.finished("a lock held on the target's database")
            for _ in range(10):  # the lock goes on: the same incident, no new one
                w.poll()
            incidents = w.store.list()
        finally:
            lock.rollback()
            lock.close()
        assert incident.status == "escalated" and incident.category == "database_lock", incident.diagnosis
        assert incident.actions == [] and "no runbook" in incident.recommendation
        assert w.world.pid("target") == pid  # not restarted: a restart could not take the lock away
        assert len(incidents) == 1


def test_a_full_disk_is_escalated_with_the_reason(tmp_path: Path) -> None:
    state = tmp_path / "sandbox" / "target"
    state.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(state)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small volume here: {mounted.stderr.decode()[:200]}")
    try:
        with watched_world(tmp_path) as w:
            w.warm_up()
            pid = w.world.pid("target")
            filler = state / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
            incident = w.finished("the target's volume filled by another process")
            assert incident.status == "escalated" and incident.category == "disk_full", incident.diagnosis
            assert incident.actions == [] and "disk" in incident.recommendation.lower()
            assert w.world.pid("target") == pid
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


def test_latency_added_on_the_network_path_is_named_and_escalated(tmp_path: Path) -> None:
    dependency = free_port()
    with DelayProxy(dependency) as proxy:
        target = TargetOptions(window_s=WINDOW_S, dependency_url=f"http://127.0.0.1:{proxy.port}")
        with watched_world(tmp_path, target=target, ports=WorldPorts(0, dependency, 0, 0)) as w:
            w.warm_up(8)
            pid = w.world.pid("target")
            proxy.delay_s = 0.4
            incident = w.finished("400 ms added on the path to the dependency")
            assert incident.category == "network_latency", incident.diagnosis
            assert incident.status == "escalated" and incident.actions == []
            assert w.world.pid("target") == pid


def test_memory_pressure_from_another_process_is_named_and_the_target_left_alone(tmp_path: Path) -> None:
    from opslab.sandbox.hoststat import CpuMeter

    available = CpuMeter().host().mem_available_mb
    assert available is not None
    hog_mb = 1024
    # The floor sits half the hog below what is available now: the hog crosses it, others' noise does not.
    with watched_world(tmp_path, host_memory_floor_mb=available - hog_mb / 2) as w:
        w.warm_up()
        pid = w.world.pid("target")
        with memory_hog(hog_mb):
            incident = w.finished("a gigabyte taken by another process")
        assert incident.category == "host_memory_pressure", incident.diagnosis
        assert incident.status == "escalated" and incident.actions == []
        assert w.world.pid("target") == pid


def test_a_busy_host_opens_no_incident_and_takes_no_action(tmp_path: Path) -> None:
    with watched_world(tmp_path) as w, busy_cpus(2):
        for _ in range(30):
            w.poll()
        assert w.store.list() == []
        assert w.responder.status().last_assessment is not None
