"""Two small pieces around the responder: the Slack-compatible webhook (one POST per change of an
incident's status, a dead webhook never stops anything) and the chaos suite's scorer (the hidden key)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from opslab.responder import ActionResult, Incident, ProgressEvent, WebhookNotifier
from opslab.sandbox import load_scenarios
from tests.unit.responder_fakes import T0

SCENARIOS = {s.name: s for s in load_scenarios()}


def event(status: str | None, node: str = "plan") -> ProgressEvent:
    return ProgressEvent.model_validate(
        {"incident_id": "inc-1", "node": node, "message": "m", "at": T0, "status": status}
    )


def test_the_webhook_hears_each_status_change_once() -> None:
    posted: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200)

    notify = WebhookNotifier("http://hooks.example/x", transport=httpx.MockTransport(handler))
    for status in ("open", "open", "awaiting_approval", "open", "resolved", None):
        notify(event(status))
    assert [p["status"] for p in posted] == ["open", "awaiting_approval", "open", "resolved"]
    assert all(isinstance(p["text"], str) and "inc-1" in p["text"] for p in posted)


def test_a_dead_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[httpx.Request] = []

    def dead(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    notify = WebhookNotifier("http://hooks.example/x", transport=httpx.MockTransport(dead))
    with caplog.at_level("WARNING", logger="opslab.responder"):
        notify(event("open"))  # the incident goes on: a dead receiver raises nothing into it
    assert calls and calls[0].url == "http://hooks.example/x"
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("webhook http://hooks.example/x failed" in m and "500" in m for m in warned), warned


def incident(
    category: str, status: str, actions: list[str], *, opened_s: float = 2, resolved_s: float = 9
) -> Incident:
    return Incident(
        id=f"inc-{category}",
        status=status,  # type: ignore[arg-type]
        category=category,  # type: ignore[arg-type]
        categories=[category],  # type: ignore[list-item]
        opened_at=T0 + timedelta(seconds=opened_s),
        resolved_at=T0 + timedelta(seconds=resolved_s) if status == "resolved" else None,
        actions=[ActionResult(action=a, status="success") for a in actions],
    )


def test_a_fault_fixed_by_an_accepted_action_scores_resolved_with_its_times() -> None:
    from opslab.sandbox.suite_model import score  # not re-exported: the scorer is the suite's business

    s = score(
        SCENARIOS["bad-deploy"],
        [incident("bad_deploy", "resolved", ["rollback-deploy"])],
        injected_at=T0,
        healthy_at_end=True,
        repeat=0,
        polls=10,
    )
    assert (s.detected, s.diagnosis_correct, s.resolved, s.outcome_correct) == (True, True, True, True)
    assert (s.mttd_s, s.mttr_s, s.actions, s.false_actions) == (2.0, 9.0, 1, 0)


def test_an_action_outside_the_key_is_a_false_action_and_a_wrong_diagnosis_counts() -> None:
    from opslab.sandbox.suite_model import score

    s = score(
        SCENARIOS["bad-deploy"],
        [incident("memory_leak", "resolved", ["restart-target"])],
        injected_at=T0,
        healthy_at_end=True,
        repeat=0,
        polls=10,
    )
    assert s.false_actions == 1 and not s.diagnosis_correct


def test_any_action_on_a_control_is_false_and_quiet_is_right() -> None:
    from opslab.sandbox.suite_model import score, summarize

    noisy = score(
        SCENARIOS["traffic-spike"],
        [incident("unknown", "escalated", ["scale-pool"])],
        injected_at=T0,
        healthy_at_end=True,
        repeat=0,
        polls=12,
    )
    quiet = score(SCENARIOS["no-fault"], [], injected_at=T0, healthy_at_end=True, repeat=0, polls=12)
    assert noisy.false_actions == 1 and not noisy.outcome_correct
    assert quiet.outcome == "quiet" and quiet.outcome_correct and quiet.false_actions == 0
    summary = summarize([noisy, quiet])
    assert summary.control_actions == 1 and summary.false_actions == 1


def test_two_faults_need_both_diagnoses_and_an_unhealthy_end_is_not_resolved() -> None:
    from opslab.sandbox.suite_model import score

    one = score(
        SCENARIOS["two-faults"],
        [incident("bad_deploy", "resolved", ["rollback-deploy"])],
        injected_at=T0,
        healthy_at_end=False,
        repeat=0,
        polls=10,
    )
    assert not one.diagnosis_correct and not one.resolved and one.outcome == "unresolved"
