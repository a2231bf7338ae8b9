"""The plan for any service, its secrets, the rollback command, custom guard metrics, the target's own
verdict against ours, and the exit codes — deterministically, through the fakes of canary_fakes."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from opslab.canary import (
    EXIT_BLOCKED,
    EXIT_EDGE,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_NOT_RESTORED,
    EXIT_PASS,
    exit_code_of,
    parse_plan,
    readable,
    resolve_secrets,
    rollback_command,
    run_canary,
)
from opslab.errors import InvalidInput
from tests.unit.canary_fakes import FakeTarget, SeededLoad, plan_for

EXPERIMENT = {"qps": 10.0, "window_sec": 1.0, "rounds": 1}


def refused(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidInput) as exc:
        parse_plan(data)
    return {e["field"]: e["message"] for e in exc.value.details["errors"]}


def test_candidate_flags_are_any_json_object_or_the_seeds_shorthand_never_both() -> None:
    plan = parse_plan({"experiment": {**EXPERIMENT, "flags": {"cache": {"mode": "warm"}, "pool": [1, 2]}}})
    assert plan.candidate_flags() == {"cache": {"mode": "warm"}, "pool": [1, 2]}
    both = refused({"experiment": {**EXPERIMENT, "flags": {"a": 1}, "routing_mode": "rules"}})
    assert "not both" in both["experiment"]
    neither = refused({"experiment": {**EXPERIMENT, "flow_policy": "aimd"}})
    assert "target_p95, routing_mode, topk_threshold" in neither["experiment"]
    assert "empty" in refused({"experiment": {**EXPERIMENT, "flags": {}}})["experiment"]


def test_every_bad_target_field_is_named() -> None:
    errors = refused(
        {
            "experiment": {**EXPERIMENT, "flags": {"a": 1}},
            "target": {
                "base_url": "ftp://x",
                "flags_method": "GET",
                "headers": {"X-Token": "${unclosed"},
                "requests": [{"method": "POST", "path": "v1", "weight": 0}],
                "error_statuses": [700],
            },
        }
    )
    assert set(errors) == {
        "target.base_url",
        "target.flags_method",
        "target.headers.X-Token",
        "target.requests[0].path",
        "target.requests[0].weight",
        "target.error_statuses[0]",
    }

    bad_name = refused({"experiment": {**EXPERIMENT, "flags": {"a": 1}}, "target": {"headers": {"A B": "x"}}})
    assert "not an HTTP header name" in bad_name["target.headers"]


def test_metrics_must_be_consistent_before_anything_runs() -> None:
    base = {"experiment": {**EXPERIMENT, "flags": {"a": 1}}}
    assert "metrics.prometheus" in refused({**base, "metrics": {"source": "prometheus"}})["metrics"]
    no_url = refused({**base, "metrics": {"custom": [{"name": "q", "query": "up", "fail_worse_by": 1}]}})
    assert "needs metrics.prometheus.url" in no_url["metrics"]
    both = refused(
        {**base, "metrics": {"custom": [{"name": "q", "stat": "p99", "query": "up", "fail_worse_by": 1}]}}
    )
    assert "exactly one" in both["metrics.custom[0]"]
    placeholder = {"url": "http://p:9090", "p95_ms": "x[{{window}}]", "error_rate_pct": "y"}
    bad = refused({**base, "metrics": {"source": "prometheus", "prometheus": placeholder}})
    assert "{{window}}" in bad["metrics.prometheus.p95_ms"]


def test_secrets_come_from_the_environment_and_are_masked_a_remote_plan_reads_only_what_it_may() -> None:
    plan = parse_plan(
        {
            "experiment": {**EXPERIMENT, "flags": {"a": 1}},
            "target": {"headers": {"Authorization": "Bearer ${CANARY_TOKEN}", "X-Api-Key": "literal-key-1"}},
            "notify": {"webhook_url": "https://hooks.example/${CANARY_HOOK}"},
        }
    )
    env = {"CANARY_TOKEN": "s3cret-token", "CANARY_HOOK": "T000/B000/XYZ", "OPSLAB_API_TOKEN": "admin"}
    s = resolve_secrets(plan, env)
    assert (
        s.headers["Authorization"] == "Bearer s3cret-token"
        and s.webhook_url == "https://hooks.example/T000/B000/XYZ"
    )
    said = s.redact("got Bearer s3cret-token with literal-key-1 to https://hooks.example/T000/B000/XYZ")
    assert "s3cret" not in said and "literal-key-1" not in said and "XYZ" not in said
    with pytest.raises(InvalidInput) as exc:
        resolve_secrets(plan, {})
    assert [e["field"] for e in exc.value.details["errors"]] == [
        "target.headers.Authorization",
        "notify.webhook_url",
    ]
    stealing = parse_plan(
        {**plan.model_dump(exclude_unset=True), "notify": {"webhook_url": "http://x/${OPSLAB_API_TOKEN}"}}
    )
    with pytest.raises(InvalidInput, match="may not be read"):
        resolve_secrets(stealing, env, may_read=readable(["CANARY_*", "OPSLAB_*"]))


def test_the_rollback_command_survives_a_shell_and_never_holds_a_literal_credential() -> None:
    plan = parse_plan(
        {
            "experiment": {**EXPERIMENT, "flags": {"a": 1}},
            "target": {
                "base_url": "http://svc:8080",
                "flags_path": "/config/flags?env=prod",
                "flags_method": "PATCH",
                "headers": {"Authorization": "Bearer ${TOKEN}", "Cookie": "sid=abc123", "X-Team": "o'neil"},
            },
        }
    )
    cmd = rollback_command(plan, {"note": 'it\'s "quoted"', "n": 1}, one_line=True)
    argv = shlex.split(cmd)  # the shell's own reading of it
    assert argv[:4] == ["curl", "-X", "PATCH", "http://svc:8080/config/flags?env=prod"]
    assert "Authorization: Bearer ${TOKEN}" in argv and "X-Team: o'neil" in argv
    assert "Cookie: <cookie>" in argv and "abc123" not in cmd
    assert argv[-1] == '{"note":"it\'s \\"quoted\\"","n":1}'
    assert "\n" not in cmd and rollback_command(plan, {}).count(" \\\n  ") == 5


def guard(**kw: Any) -> dict[str, Any]:
    return {"name": "p99", "stat": "p99", "fail_worse_by": 10.0, **kw}


@pytest.mark.parametrize(
    ("metric", "decision"),
    [
        (guard(critical=True), "PASS"),  # p99 improves with the rest: the guard passes
        (guard(stat="error_rate", compare="absolute", fail_worse_by=0.5, critical=True), "FAIL"),
        (guard(stat="throughput", direction="higher", fail_worse_by=50.0), "PASS"),
        (guard(stat="error_rate", compare="absolute", fail_worse_by=0.5), "EDGE"),  # not critical
    ],
)
def test_custom_metrics_are_judged_alongside_and_a_critical_fail_fails_the_canary(
    tmp_path: Path, metric: dict[str, Any], decision: str
) -> None:
    target = FakeTarget()
    # Errors under the canary's own 5% bar: only the error-rate guard can object to them.
    plan = plan_for(metrics={"custom": [metric]}, thresholds={"max_error_rate": 5.0})
    load = SeededLoad(target, effect=-0.20, b_error_rate=0.008)
    r = run_canary(plan, target, reports_dir=tmp_path, history_path=tmp_path / "h.jsonl", window=load)
    (m,) = r.metrics
    assert r.decision == decision, (r.reason, m)
    assert r.applied == (decision == "PASS")
    assert f"- {m.name}: " in (tmp_path / "LABOPS_AGENT_SUMMARY.txt").read_text()


@pytest.mark.parametrize(
    ("policy", "decision", "applied"),
    [("stricter", "EDGE", False), ("ours", "PASS", True), ("target", "EDGE", False)],
)
def test_when_the_targets_report_disagrees_both_verdicts_are_shown_and_the_plan_picks(
    tmp_path: Path, policy: str, decision: str, applied: bool
) -> None:
    target = FakeTarget(report="ΔP95: -14.0%\nΔQPS: +0.2%\nErr%: 0.10\nVerdict: EDGE\n")
    plan = plan_for(mode="report", report_verdict=policy)
    r = run_canary(plan, target, reports_dir=tmp_path, history_path=tmp_path / "h.jsonl")
    assert (r.decision, r.applied, r.target_verdict, r.our_verdict) == (decision, applied, "EDGE", "PASS")
    text = (tmp_path / "LABOPS_AGENT_SUMMARY.txt").read_text()
    assert f"- Verdicts: target's report EDGE, ours PASS (report_verdict: {policy})" in text


def test_a_health_gate_fail_shows_no_made_up_numbers(tmp_path: Path) -> None:
    r = run_canary(
        plan_for(), FakeTarget(qdrant=False), reports_dir=tmp_path, history_path=tmp_path / "h.jsonl"
    )
    text = (tmp_path / "LABOPS_AGENT_SUMMARY.txt").read_text()
    assert r.blocked and "- Error Rate: n/a" in text and "0.00%" not in text
    assert "Err%: n/a" in (tmp_path / "LAB_COMBO_REPORT_MINI.txt").read_text()


def test_exit_codes_let_a_pipeline_gate_on_the_verdict() -> None:
    assert exit_code_of("PASS") == EXIT_PASS == 0
    assert exit_code_of("EDGE") == EXIT_EDGE and exit_code_of("FAIL") == EXIT_FAIL
    assert exit_code_of("FAIL", blocked=True) == EXIT_BLOCKED
    assert exit_code_of("INTERRUPTED") == EXIT_INTERRUPTED
    assert (
        exit_code_of("PASS", restore_failed=True)
        == exit_code_of("INTERRUPTED", restore_failed=True)
        == EXIT_NOT_RESTORED
    )
    assert (
        len({EXIT_PASS, EXIT_EDGE, EXIT_FAIL, EXIT_BLOCKED, EXIT_NOT_RESTORED, EXIT_INTERRUPTED, 1, 2}) == 8
    )


def test_a_targets_own_time_is_read_from_server_timing_or_its_own_header() -> None:
    from opslab.canary import server_time_ms

    assert server_time_ms({"Server-Timing": "db;dur=3.5, app;dur=120.25;desc=handler"}) == 120.25
    assert server_time_ms({"Server-Timing": 'cache;desc="hit"'}) is None
    assert server_time_ms({"X-Server-Time-Ms": "84.5", "Server-Timing": "app;dur=1"}) == 84.5
    assert server_time_ms({"X-Server-Time-Ms": "soon"}) is None and server_time_ms({}) is None
