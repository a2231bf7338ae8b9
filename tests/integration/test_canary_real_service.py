"""The canary on a service that is not the sandbox (tests/flag_service.py: its own flag names, PUT, bearer
auth, a POST request mix), with real open-loop load over real HTTP: the verdict, what is applied, the
secrets kept out of everything written, a target that cannot be restored, the request mix, webhooks."""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any

from opslab.canary import (
    EXIT_NOT_RESTORED,
    CanaryResult,
    HttpTarget,
    exit_code_of,
    parse_plan,
    read_history,
    resolve_secrets,
    run_canary,
)
from tests.canary_support import judged_as_an_improvement
from tests.flag_service import (
    BASELINE,
    TOKEN,
    FlagService,
    RemoteFlagService,
    flag_service,
    real_service_plan,
    webhook_receiver,
)

ENV = {"CANARY_TOKEN": TOKEN}


def canary(tmp_path: Path, svc: RemoteFlagService, **changes: Any) -> CanaryResult:
    plan = parse_plan(real_service_plan(svc.url, **changes))
    secrets = resolve_secrets(plan, ENV)
    target = HttpTarget(plan.target, secrets, seed=plan.seed)
    try:
        return run_canary(
            plan,
            target,
            reports_dir=tmp_path / "reports",
            history_path=tmp_path / "history.jsonl",
            secrets=secrets,
        )
    finally:
        target.close()


def written(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())


def test_a_30_percent_faster_candidate_passes_is_applied_with_put_and_no_token_is_written(
    tmp_path: Path,
) -> None:
    with flag_service() as svc:
        r = canary(tmp_path, svc)
        # With the windows: a round whose improvement a busy machine's stall hid may be judged as measured
        # (never applied unless a PASS), as tests/canary_support.py says.
        passed = judged_as_an_improvement(r.decision, r.applied, r.delta_p95_pct, r.reason, r.windows)
        assert svc.flags == ({"cache_mode": "warm", "pool": 4} if passed else BASELINE)
        assert r.previous_flags == BASELINE and svc.hits["/v1/query"] > 300
    # The service sleeps 30 % less on B and times itself (Server-Timing): each window's served p95 is its
    # arm's sleep plus how late this machine woke the service, and the arms differ by the sleeps' difference
    # to within the latest of those wake-ups in this run. (The client's figure adds its own delays too.)
    sleep_ms = {"A": FlagService.slow_ms, "B": FlagService.slow_ms * (1 - FlagService.speedup)}
    late = [w.served_p95_ms - sleep_ms[w.arm] for w in r.windows if w.served_p95_ms is not None]
    assert len(late) == len(r.windows) and min(late) >= 0, r.windows
    served = {arm: mean(w.served_p95_ms or 0.0 for w in r.windows if w.arm == arm) for arm in "AB"}
    gap = served["A"] - served["B"]
    assert abs(gap - (sleep_ms["A"] - sleep_ms["B"])) <= max(late) + 1.0, r.windows
    text = (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()
    assert "curl -X PUT" in text and '-H "Authorization: Bearer ${CANARY_TOKEN}"' in text
    assert TOKEN not in written(tmp_path) and read_history(tmp_path / "history.jsonl")[0].applied == passed


def test_a_token_the_target_echoes_back_in_an_error_is_masked(tmp_path: Path) -> None:
    """The flags route answers 401 with the header it got; the run fails, and the token is not written."""
    with flag_service() as svc:
        plan = real_service_plan(svc.url)
        plan["target"]["headers"] = {"Authorization": "Bearer ${CANARY_TOKEN}-stale"}
        p = parse_plan(plan)
        secrets = resolve_secrets(p, ENV)
        target = HttpTarget(p.target, secrets)
        r = run_canary(
            p, target, reports_dir=tmp_path / "r", history_path=tmp_path / "h.jsonl", secrets=secrets
        )
        target.close()
    assert r.decision == "FAIL" and r.blocked and "HTTP 401 (check target.headers)" in r.reason
    assert "[REDACTED]" in r.reason and TOKEN not in written(tmp_path) and TOKEN not in r.model_dump_json()


def test_a_target_that_cannot_be_restored_says_so_loudly_with_the_rollback_and_tells_the_webhook(
    tmp_path: Path,
) -> None:
    with flag_service(stuck_after_candidate=True) as svc, webhook_receiver() as hook:
        r = canary(tmp_path, svc, notify={"webhook_url": hook.url + "/hooks/${CANARY_TOKEN}"})
        assert svc.flags["cache_mode"] == "warm"  # stuck on B
    assert r.restore_failed and not r.applied and r.decision != "PASS"
    assert exit_code_of(r.decision, blocked=r.blocked, restore_failed=r.restore_failed) == EXIT_NOT_RESTORED
    text = (tmp_path / "reports" / "LABOPS_AGENT_SUMMARY.txt").read_text()
    assert "BASELINE NOT RESTORED" in text and "Restore the baseline NOW" in text
    assert '-d \'{"cache_mode":"cold","pool":4}\'' in text
    (event,) = hook.received
    assert event["event"] == "restore_failed" and "could NOT restore" in event["text"]
    assert "curl -X PUT" in event["text"] and event["path"] == f"/hooks/{TOKEN}"
    assert TOKEN not in event["text"] and TOKEN not in written(tmp_path)


def test_the_request_mix_follows_its_weights_and_listed_statuses_count_as_errors(tmp_path: Path) -> None:
    mix = [
        {"method": "POST", "path": "/v1/query", "body": {"q": "x"}, "weight": 3},
        {"method": "POST", "path": "/v1/slow", "weight": 1},
    ]
    with flag_service(slow_status=429) as svc, webhook_receiver() as hook:
        r = canary(
            tmp_path,
            svc,
            target={"requests": mix, "error_statuses": [429]},
            notify={"webhook_url": hook.url},
        )
        ratio = svc.hits["/v1/query"] / svc.hits["/v1/slow"]
    assert 2.0 < ratio < 4.2, svc.hits  # one seeded draw of the mix, the same in every window
    assert r.decision == "FAIL" and r.error_rate_pct is not None and 15 < r.error_rate_pct < 35
    (event,) = hook.received
    assert event["event"] == "verdict" and event["canary"]["decision"] == "FAIL"
