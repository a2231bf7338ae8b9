"""`opslab canary run` as a user and a CI pipeline run it: a real SIGINT during a B window, the exit codes
(the health gate's checked against docs/canary.md's table), a bad plan under --json, and --url (the plan
run as a job of a running service, followed over SSE)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import yaml

from opslab.canary import (
    EXIT_BLOCKED,
    EXIT_EDGE,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    WindowSummary,
    read_history,
)
from tests.canary_support import documented_exit_code, judged_as_an_improvement
from tests.e2e.conftest import OPSLAB, clean_env, run_cli
from tests.flag_service import BASELINE, TOKEN, flag_service, real_service_plan, serve
from tests.ports import free_port


def write_plan(tmp_path: Path, plan: dict[str, Any]) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_sigint_in_a_b_window_restores_the_baseline_and_leaves_an_interrupted_summary_and_history_row(
    tmp_path: Path,
) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), CANARY_TOKEN=TOKEN)
    with flag_service() as svc:
        plan = real_service_plan(svc.url, experiment={"window_sec": 5.0, "rounds": 3, "qps": 40.0})
        write_plan(tmp_path, plan)
        proc = subprocess.Popen(
            [OPSLAB, "canary", "run", "--config", "plan.yaml"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while svc.flags.get("cache_mode") != "warm" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.flags.get("cache_mode") == "warm", "the B window never started"
        in_b = svc.hits["/v1/query"]
        while svc.hits["/v1/query"] < in_b + 10 and time.monotonic() < deadline:  # B's load is flowing
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # a second Ctrl-C only warns: the restore goes on
        out, err = proc.communicate(timeout=30)
        assert svc.flags == BASELINE and svc.flag_writes[-1] == BASELINE
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "interrupted (SIGINT)" in err
    summary = (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()
    assert "Decision: INTERRUPTED" in summary and "restored and verified" in summary
    (row,) = read_history(tmp_path / "data" / "canary" / "history.jsonl")
    assert row.decision == "INTERRUPTED" and row.interrupted and row.interrupted.startswith("SIGINT")
    assert not row.applied and TOKEN not in out + err + summary


def test_a_bad_plan_under_json_prints_the_error_envelope_with_every_field(tmp_path: Path) -> None:
    bad = {
        "experiment": {"qps": -1, "window_sec": 0, "rounds": 1, "flags": {"a": 1}},
        "target": {"flags_method": "DELETE", "flags_path": "config", "headers": {"X": "${oops"}},
    }
    write_plan(tmp_path, bad)
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
    r = run_cli("canary", "run", "--config", "plan.yaml", "--json", env=env, cwd=tmp_path)
    assert r.returncode == 2
    body = json.loads(r.stdout)
    fields = {e["field"] for e in body["error"]["details"]["errors"]}
    assert fields == {
        "experiment.qps",
        "experiment.window_sec",
        "target.flags_method",
        "target.flags_path",
        "target.headers.X",
    }
    plain = run_cli("canary", "run", "--config", "plan.yaml", env=env, cwd=tmp_path)
    assert plain.returncode == 2 and "5 problems" in plain.stderr
    assert all(f in plain.stderr for f in fields) and "more)" not in plain.stderr


def test_an_unset_header_variable_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with flag_service() as svc:
        write_plan(tmp_path, real_service_plan(svc.url))
        r = run_cli("canary", "run", "--config", "plan.yaml", env=clean_env(), cwd=tmp_path)
        assert svc.flag_writes == [] and sum(svc.hits.values()) == 0
    assert r.returncode == 2 and "target.headers.Authorization" in r.stderr and "CANARY_TOKEN" in r.stderr


def test_url_runs_the_plan_as_a_job_and_exits_with_the_verdicts_code(
    tmp_path: Path, start_service: Any
) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), CANARY_TOKEN=TOKEN)
    service = start_service(env=env)
    cli_env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "cli-data"))  # the token stays with the service
    with flag_service() as svc:
        write_plan(tmp_path, real_service_plan(svc.url))
        r = run_cli("canary", "run", "--config", "plan.yaml", "--url", service.url, env=cli_env, cwd=tmp_path)
        # The exit code is the verdict's, and the verdict the shared contract's for a 30 % faster candidate
        # (tests/canary_support.py: judged_as_an_improvement): PASS and applied; a busy machine's stalls may
        # leave it unconfirmed (EDGE, the baseline kept), or, where a stall hid it in a whole round, judged
        # as measured — never applied unless it passed.
        run_id = re.search(r"canary run ([0-9a-f]{32}) on", r.stdout)
        assert run_id, r.stdout + r.stderr
        record = httpx.get(f"{service.url}/canary/runs/{run_id[1]}", timeout=30).json()["result"]
        windows = [WindowSummary.model_validate(w) for w in record["windows"]]
        decision, shown = record["decision"], r.stdout + r.stderr
        assert r.returncode == {"PASS": EXIT_PASS, "EDGE": EXIT_EDGE, "FAIL": EXIT_FAIL}[decision], shown
        passed = judged_as_an_improvement(
            decision, record["applied"], record["delta_p95_pct"], shown, windows
        )
        assert svc.flags["cache_mode"] == ("warm" if passed else BASELINE["cache_mode"])
    assert f"Decision: {decision}" in r.stdout and "Judge" in r.stdout
    assert "curl -X PUT" in r.stdout
    # A candidate whose every request fails: FAIL by the error rate, whatever a busy machine does to
    # latencies (a no-effect candidate judged on one short window can read as noise either way).
    with flag_service(speedup=0.0, slow_status=503) as same:
        quick = {"window_sec": 1.0, "rounds": 1, "qps": 50.0}
        failing = {"requests": [{"method": "POST", "path": "/v1/slow", "body": {"q": "x"}, "weight": 1}]}
        write_plan(tmp_path, real_service_plan(same.url, experiment=quick, target=failing))
        r = run_cli(
            "canary",
            "run",
            "--config",
            "plan.yaml",
            "--url",
            service.url,
            "--json",
            env=cli_env,
            cwd=tmp_path,
        )
        assert r.returncode == EXIT_FAIL, r.stdout + r.stderr
        assert same.flags == BASELINE
    view = json.loads(r.stdout)
    assert view["status"] == "done" and view["result"]["decision"] == "FAIL"
    assert TOKEN not in r.stdout + service.log.read_text()


def test_a_service_shutting_down_mid_canary_restores_the_baseline_first(
    tmp_path: Path, start_service: Any
) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), CANARY_TOKEN=TOKEN)
    service = start_service(env=env)
    with flag_service() as svc:
        plan = real_service_plan(svc.url, experiment={"window_sec": 5.0, "rounds": 3, "qps": 40.0})
        created = httpx.post(f"{service.url}/canary/runs", json={"plan": plan}, timeout=10)
        assert created.status_code == 202, created.text
        deadline = time.monotonic() + 30
        while svc.flags.get("cache_mode") != "warm" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.flags.get("cache_mode") == "warm", "the B window never started"
        service.stop()  # SIGTERM: the service's shutdown stops the job like a Ctrl-C
        assert service.proc.returncode is not None
        assert svc.flags == BASELINE
    (row,) = read_history(tmp_path / "data" / "canary" / "history.jsonl")
    assert row.decision == "INTERRUPTED" and row.interrupted
    assert row.interrupted.startswith("the service is shutting down")


def unhealthy_service(seen: list[str]) -> type[BaseHTTPRequestHandler]:
    """A target whose health says its database is down; it records every request but the health check."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, body: object) -> None:
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                return self._send({"ok": False, "health": {"db": {"ok": False}, "cache": {"ok": True}}})
            seen.append(f"GET {self.path}")
            return self._send(BASELINE)

        def do_PUT(self) -> None:
            seen.append(f"PUT {self.path}")
            self._send(BASELINE)

        def do_POST(self) -> None:
            seen.append(f"POST {self.path}")
            self._send({"ok": True})

    return Handler


def test_the_health_gate_exits_with_the_code_the_docs_give_and_changes_nothing(tmp_path: Path) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), CANARY_TOKEN=TOKEN)
    documented = documented_exit_code("health gate")
    seen: list[str] = []
    with serve(unhealthy_service(seen)) as url:
        write_plan(tmp_path, real_service_plan(url))
        r = run_cli("canary", "run", "--config", "plan.yaml", env=env, cwd=tmp_path)
        as_json = run_cli("canary", "run", "--config", "plan.yaml", "--json", env=env, cwd=tmp_path)
    assert r.returncode == documented == EXIT_BLOCKED, r.stdout + r.stderr
    assert as_json.returncode == documented and json.loads(as_json.stdout)["blocked"] is True
    assert seen == ["GET /config/flags", "GET /config/flags"]  # the baseline read; no flag written, no load
    summary = (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()
    assert "Decision: FAIL" in summary and "health gate: unhealthy dependencies db" in summary
    # A target that cannot be reached is stopped at the same gate (the same row of the table).
    write_plan(tmp_path, real_service_plan(f"http://127.0.0.1:{free_port()}"))
    down = run_cli("canary", "run", "--config", "plan.yaml", env=env, cwd=tmp_path)
    assert down.returncode == documented_exit_code("cannot be reached or refuses") == documented
    assert "target unreachable" in (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()
