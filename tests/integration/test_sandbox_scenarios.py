"""The chaos scenarios as files: the packaged ones load and say what a responder should find; a bad file
is refused naming the file and the field; the CLI lists them and refuses bad input with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opslab.errors import InvalidInput
from opslab.sandbox import ACTION_NAMES, load_scenarios, scenarios_folder
from tests.e2e.conftest import clean_env, run_cli

GOOD = """
title: t
method:
  - type: action
    name: break
    provider: {type: http, url: /api/v1/break/db_pool, arguments: {duration_s: 6}}
expected: {category: db_pool_exhaustion, root_cause: leak, remediations: [recycle-pool]}
"""


def test_the_packaged_scenarios_cover_every_category_and_two_controls() -> None:
    scenarios = {s.name: s for s in load_scenarios()}
    assert set(scenarios) == {
        "db-pool-exhaustion",
        "bad-deploy",
        "latency-flag",
        "memory-leak",
        "dependency-outage",
        "traffic-spike",
        "no-fault",
        "two-faults",
        "returning-pool-leak",
    }
    assert scenarios["two-faults"].faults == ["bad_deploy", "latency_flag"]
    assert scenarios["two-faults"].expected.categories == ["bad_deploy", "latency_regression"]
    drills = load_scenarios(scenarios_folder() / "drills")
    assert [d.expected.outcome for d in drills] == ["escalated"]
    controls = {name for name, s in scenarios.items() if s.expected.control}
    assert controls == {"traffic-spike", "no-fault"}
    assert all(scenarios[c].expected.category == "none" for c in controls)
    assert scenarios["latency-flag"].expected.category == "latency_regression"
    assert scenarios["db-pool-exhaustion"].method[0].provider.arguments == {"duration_s": 6}
    assert "recycle-pool" in scenarios["db-pool-exhaustion"].expected.remediations
    for s in scenarios.values():
        assert set(s.expected.remediations) <= set(ACTION_NAMES)
        assert s.steady_state_hypothesis is not None


@pytest.mark.parametrize(
    ("replace", "field"),
    [
        (("db_pool_exhaustion", "db_pool_exhaust"), "expected.category"),
        (("/api/v1/break/db_pool", "/api/v1/break/meteor"), "method[0].provider"),
        (("[recycle-pool]", "[reboot]"), "expected.remediations"),
        (("title: t\n", ""), "title"),
    ],
)
def test_a_bad_scenario_file_is_refused_naming_the_file_and_field(
    tmp_path: Path, replace: tuple[str, str], field: str
) -> None:
    (tmp_path / "ok.yaml").write_text(GOOD)
    (tmp_path / "broken.yaml").write_text(GOOD.replace(*replace))
    with pytest.raises(InvalidInput) as err:
        load_scenarios(tmp_path)
    assert err.value.message.startswith("broken.yaml: ")
    assert field in [e["field"] for e in err.value.details["errors"]], err.value.details


def test_the_cli_lists_scenarios_and_refuses_unknown_parts(tmp_path: Path) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path))
    listed = run_cli("sandbox", "scenarios", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert {s["name"] for s in json.loads(listed.stdout)} >= {"bad-deploy", "no-fault"}
    refused = run_cli("sandbox", "up", "--only", "target,moon", env=env)
    assert refused.returncode == 2 and "--only" in refused.stderr and "moon" in refused.stderr


def test_the_target_alone_starts_in_a_fresh_data_dir(tmp_path: Path) -> None:
    import subprocess

    import httpx

    from tests.e2e.conftest import OPSLAB, Service, wait_http
    from tests.ports import free_port

    port, log = free_port(), tmp_path / "target.log"
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "fresh"))
    argv = [OPSLAB, "sandbox", "target", "--port", str(port), "--traffic-rps", "0"]
    proc = subprocess.Popen(
        argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
        health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).json()
        assert health["checks"]["database"]["ok"] is True and health["checks"]["disk"]["ok"] is True
    finally:
        Service(proc, "", log).stop()
    assert (tmp_path / "fresh" / "sandbox" / "target" / "orders.db").is_file()


def test_a_server_that_takes_orders_refuses_to_bind_beyond_loopback_without_its_token(tmp_path: Path) -> None:
    from tests.ports import free_port

    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path))
    refused = run_cli(
        "sandbox", "target", "--host", "0.0.0.0", "--port", str(free_port()), env=env, timeout=60
    )
    assert refused.returncode == 2 and "--host" in refused.stderr and "--token-file" in refused.stderr


def test_a_standard_chaostoolkit_experiment_loads_without_an_opslab_key(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        """
version: 1.0.0
title: my own experiment
description: written for chaostoolkit, nothing opslab-specific
configuration:
  chaos: {type: env, key: CHAOS, default: "http://chaos.internal:8180"}
method:
  - type: action
    name: break the pool
    provider:
      type: http
      method: POST
      url: ${chaos}/api/v1/break/db_pool
      headers: {Content-Type: application/json, Authorization: "Bearer ${token}"}
      arguments: {duration_s: 6}
    secrets: [chaos]
    pauses: {after: 1}
rollbacks: []
"""
    )
    (only,) = load_scenarios(tmp_path)
    assert only.faults == ["db_pool"] and only.method[0].provider.path == "/api/v1/break/db_pool"
    assert only.expected.control is False and set(only.expected.remediations) == set(ACTION_NAMES)
