"""The RCA a user can trust: a run's outcome first (nothing blamed in a run that succeeded, handled
errors never the cause), the cause over the symptom (a value traced back to where it entered), the
categories as data a user extends, and a model's words kept only where they cite evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opslab.errors import InvalidInput
from opslab.rca import analyze_run
from opslab.rca.dataflow import entries, identifiers
from opslab.rca.llm import grounded_sentences
from opslab.rca.taxonomy import USER_FILE, load_taxonomy, shipped
from opslab.telemetry import import_runs, parse_run

T = "2026-05-14T16:20:{:02d}Z"


def _run(rid: str, status: str, steps: list[dict[str, Any]], calls: list[dict[str, Any]], **more: Any) -> Any:
    body = {
        "run_id": rid,
        "agent_name": "billing-agent",
        "status": status,
        "started_at": T.format(0),
        "ended_at": T.format(59),
        "steps": steps,
        "tool_calls": calls,
        **more,
    }
    return parse_run(body)


def _step(i: int, name: str, status: str = "success", **more: Any) -> dict[str, Any]:
    return {"step_id": f"st-{i}", "name": name, "status": status, "started_at": T.format(i * 4),
            "ended_at": T.format(i * 4 + 3), **more}  # fmt: skip


def _call(i: int, step: int, tool: str, status: str, args: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"call_id": f"call-{i}", "step_id": f"st-{step}", "tool_name": tool, "status": status,
            "args_json": args, "started_at": T.format(step * 4 + 1), "ended_at": T.format(step * 4 + 2),
            **more}  # fmt: skip


def _ids(report: Any) -> set[str]:
    return {e.evidence_id for e in report.evidence_index}


# --- outcome first ------------------------------------------------------------------------------------


def test_a_run_that_succeeded_after_a_rate_limit_is_not_blamed() -> None:
    run = _run(
        "ok-after-429",
        "success",
        [_step(1, "look up invoice"), _step(2, "reply")],
        [
            _call(
                1,
                1,
                "invoices",
                "failure",
                {"invoice": "INV-20931"},
                status_code=429,
                error_class="RateLimitError",
                error_message="slow down",
            ),  # fmt: skip
            _call(2, 1, "invoices", "success", {"invoice": "INV-20931"}, result_summary="paid"),
        ],
    )
    report = analyze_run(run)
    assert report.outcome == "succeeded" and report.category == "none" and report.root_cause is None
    assert report.hypotheses == [] and report.action_items == []
    assert [h.evidence_id for h in report.handled] == ["ev_tool_call-1"]
    assert "retried" in report.handled[0].how and report.handled[0].evidence_id in _ids(report)
    assert "failed" not in report.summary


def test_a_content_filter_that_acted_in_a_successful_run_is_handled() -> None:
    run = _run(
        "ok-filtered",
        "success",
        [_step(1, "draft"), _step(2, "send")],
        [],
        guardrail_events=[
            {
                "event_id": "flt-1",
                "type": "content_filter",
                "message": "masked a card number",
                "step_id": "st-1",
            }
        ],  # fmt: skip
    )
    report = analyze_run(run)
    assert report.root_cause is None and [h.evidence_id for h in report.handled] == ["ev_guard_flt-1"]


def test_the_error_that_ended_the_run_outranks_a_timeout_it_handled() -> None:
    run = _run(
        "model-error-after-timeout",
        "failure",
        [_step(1, "fetch usage"), _step(2, "write summary", "failure", output_summary="output was not JSON")],
        [
            _call(
                1,
                1,
                "usage_api",
                "failure",
                {"account": "ACC-3310"},
                error_class="TimeoutError",
                error_message="read timed out after 30s",
            ),  # fmt: skip
            _call(2, 1, "usage_api", "success", {"account": "ACC-3310"}, result_summary="42 GB"),
        ],
        error_type="OutputParserException",
        error_message="Could not parse LLM output: expected a JSON object",
    )
    report = analyze_run(run)
    assert report.outcome == "failed" and report.root_cause is not None
    assert report.root_cause.step_id == "st-2" and report.category == "output_parse_error"
    assert "ev_tool_call-1" in {h.evidence_id for h in report.handled}
    assert "ev_tool_call-1" not in report.root_cause.evidence_ids


# --- cause over symptom -------------------------------------------------------------------------------


def _typo_run(status_of_middle: str = "success") -> Any:
    return _run(
        "typo",
        "failure",
        [
            _step(1, "find account", output_summary="account USR-10442 is on the Pro plan"),
            _step(2, "change plan"),
            _step(3, "notify"),
            _step(4, "credit", "failure"),
        ],
        [
            _call(1, 1, "accounts.search", "success", {"email": "ana@b.example"}, result_summary="USR-10442"),
            _call(2, 2, "plans.change", "success", {"user": "USR-10424", "plan": "team"}),
            _call(3, 3, "mail.send", status_of_middle, {"user": "USR-10424", "template": "plan-changed"}),
            _call(
                4,
                4,
                "billing.credit",
                "failure",
                {"user": "USR-10424", "amount": 20},
                status_code=404,
                error_class="NotFound",
                error_message="no billing profile for USR-10424",
            ),  # fmt: skip
        ],
        error_type="ToolError",
        error_message="credit failed",
    )


def test_a_value_no_step_produced_is_the_cause_and_the_chain_cites_each_link() -> None:
    report = analyze_run(_typo_run())
    assert report.root_cause is not None and report.root_cause.step_id == "st-2"
    assert report.category == "wrong_tool_argument" and report.responsible_agent == "billing-agent"
    chain = report.causal_chain
    assert [link.role for link in chain] == ["cause", "propagation", "symptom"]
    assert [link.step_id for link in chain] == ["st-2", "st-3", "st-4"]
    assert all(link.evidence_id in _ids(report) for link in chain)
    cause = next(e for e in report.evidence_index if e.evidence_id == chain[0].evidence_id)
    assert cause.attributes["value"] == "USR-10424" and cause.attributes["nearest"] == "USR-10442"
    assert report.root_cause.evidence_ids[0] == chain[0].evidence_id


def test_a_value_the_user_gave_is_not_a_cause() -> None:
    run = _run(
        "user-gave-it",
        "failure",
        [_step(1, "credit", "failure")],
        [
            _call(
                1,
                1,
                "billing.credit",
                "failure",
                {"user": "USR-777"},
                status_code=404,
                error_class="NotFound",
                error_message="no billing profile for USR-777",
            )
        ],  # fmt: skip
        input="please credit USR-777",
    )
    report = analyze_run(run)
    assert report.causal_chain == [] and report.root_cause is not None
    assert report.root_cause.step_id == "st-1"


def test_identifiers_are_the_id_like_values_only() -> None:
    found = set(identifiers({"order": "ORD-5513", "qty": 2, "note": "ship by friday", "zip": 94107,
                             "nested": [{"sku": "A9-XL"}], "flag": True}))  # fmt: skip
    assert found == {"ORD-5513", "94107", "A9-XL"}


def test_entries_remember_the_nearest_earlier_value() -> None:
    found = entries(_typo_run())
    first = next(e for e in found if e.value == "USR-10424")
    assert first.call.call_id == "call-2" and first.nearest == "USR-10442"


# --- categories as data -------------------------------------------------------------------------------


def test_a_context_window_overflow_has_its_own_category_and_runbook() -> None:
    run = _run(
        "overflow",
        "failure",
        [_step(1, "read the thread", "failure")],
        [],
        error_type="InvalidRequestError",
        error_message="prompt is too long: 210344 tokens > 200000 maximum",
    )
    report = analyze_run(run)
    assert report.category == "context_window_overflow"
    assert report.runbook is not None and report.runbook.id == "context-window-overflow"
    assert report.action_items


def test_a_user_category_from_the_knowledge_folder(tmp_path: Path) -> None:
    (tmp_path / USER_FILE).write_text(
        """
categories:
  - id: quota_exhausted
    title: The account's monthly quota ran out
    patterns: ['quota (is )?exhausted', 'monthly limit']
    before: rate_limited
    description: The provider stopped serving the account for the rest of the billing period.
    verification_steps: [Check the provider console's usage page]
    actions:
      - {type: config_change, title: Raise the quota or switch the key, priority: high}
""",
        encoding="utf-8",
    )
    taxonomy = load_taxonomy(tmp_path)
    assert taxonomy.precedence.index("quota_exhausted") < taxonomy.precedence.index("rate_limited")
    run = _run(
        "quota",
        "failure",
        [_step(1, "embed", "failure")],
        [
            _call(
                1,
                1,
                "embeddings",
                "failure",
                {"batch": "B-0001"},
                status_code=429,
                error_message="monthly quota exhausted for this key",
            )
        ],  # fmt: skip
    )
    report = analyze_run(run, taxonomy=taxonomy)
    assert report.category == "quota_exhausted"
    assert report.action_items[0].title == "Raise the quota or switch the key"
    assert report.verification_steps == ["Check the provider console's usage page"]
    assert analyze_run(run).category == "rate_limited"  # without the file: the built-in rules


def test_a_user_file_may_take_a_category_s_words_from_their_runbook(tmp_path: Path) -> None:
    (tmp_path / "quota.md").write_text(
        "---\nid: quota-runbook\ntitle: Quota exhausted\nkind: runbook\nsummary: The quota ran out.\n"
        "verification_steps: [Open the usage page]\n---\nRaise it.\n",
        encoding="utf-8",
    )
    (tmp_path / USER_FILE).write_text(
        "categories:\n  - id: quota_exhausted\n    patterns: ['quota']\n    runbook: quota-runbook\n",
        encoding="utf-8",
    )
    rule = load_taxonomy(tmp_path).by_id["quota_exhausted"]
    assert rule.description == "The quota ran out." and rule.verification_steps == ("Open the usage page",)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("categories:\n  - id: x_y\n    patterns: ['(']\n    description: d\n", "patterns[0]"),
        ("categories:\n  - id: x_y\n    before: nope\n    description: d\n", "before"),
        ("categories:\n  - id: x_y\n    patterns: [a]\n", "description"),
        ("categories:\n  - id: Bad-Id\n    description: d\n", "id"),
        ("categories: [\n", USER_FILE),
    ],
)
def test_a_bad_user_file_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    (tmp_path / USER_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        load_taxonomy(tmp_path)
    assert field in f"{err.value.message} {err.value.details}"


def test_overriding_a_built_in_category_keeps_its_runbook_words(tmp_path: Path) -> None:
    (tmp_path / USER_FILE).write_text("categories:\n  - id: timeout\n    patterns: ['took forever']\n")
    rule = load_taxonomy(tmp_path).by_id["timeout"]
    assert [p.pattern for p in rule.patterns] == ["took forever"]
    assert rule.error_classes == shipped().by_id["timeout"].error_classes and not rule.own_words


# --- grounding ----------------------------------------------------------------------------------------


def test_a_model_sentence_stays_only_with_known_citations() -> None:
    known = {"ev_tool_call-3", "ev_run_r1"}
    text = (
        "The refund failed on a wrong id [ev_tool_call-3]. Root cause: a database deadlock. "
        "See ev_run_r1. It also cites ev_made_up-9 and [ev_tool_call-3]!"
    )
    kept, dropped = grounded_sentences(text, known)
    assert kept == ["The refund failed on a wrong id [ev_tool_call-3].", "See ev_run_r1."]
    assert dropped == 2
    assert grounded_sentences("", known) == ([], 0) and grounded_sentences(None, known) == ([], 0)


# --- systems never fitted on: abstain rather than guess ------------------------------------------------


def test_a_step_marked_only_by_the_run_s_outcome_is_a_lead_not_a_finding(tmp_path: Path) -> None:
    """Agents made up for the task, no call that errs: the wrong answer is where the failure showed."""
    record = {
        "is_correct": False,
        "question": "How many stations does the Riverside tram line have?",
        "ground_truth": "14",
        "mistake_agent": "Transit_Expert",
        "mistake_step": "1",
        "history": [
            {"role": "assistant", "name": "Planner", "content": "Plan: Transit_Expert finds the stations."},
            {"role": "assistant", "name": "Transit_Expert",
             "content": "The Riverside line is the blue line: 11 stations from Dock Road to Hill Park."},
            {"role": "assistant", "name": "Checker", "content": "I counted the stations listed: 11."},
            {"role": "assistant", "name": "Planner", "content": "Final answer: 11. TERMINATE"},
        ],
    }  # fmt: skip
    (tmp_path / "1.json").write_text(json.dumps(record))
    report = analyze_run(next(iter(import_runs("who-and-when", tmp_path))))
    assert report.root_cause_step is not None and report.confidence == "low"
    assert "where the failure showed" in report.summary
