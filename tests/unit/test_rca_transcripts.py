"""RCA of free-text transcripts: step signals, the decisive step, the responsible agent, abstention."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from opslab.rca import analyze_run
from opslab.rca.evaluate import same_agent
from opslab.rca.localize import localize
from opslab.rca.scoring import Localizer, Scorer, shipped
from opslab.rca.signals import detect
from opslab.rca.train import example, fit
from opslab.rca.transcript import agent_key, read_transcript
from opslab.rca.validate import cross_validate, folds, without
from opslab.telemetry import AgentRunIn, StepIn, ToolCallIn, parse_run
from opslab.telemetry.importers import SUMMARY, magentic_runs, tau_bench_runs

T0 = datetime(2025, 1, 1, tzinfo=UTC)
FILTERED = (
    "I typed 'weather' into the search box.\nTraceback (most recent call last):\n  File \"x.py\", line 3\n"
    "openai.BadRequestError: Error code: 400 - {'error': {'code': 'content_filter', 'inner_error': "
    "{'code': 'ResponsibleAIPolicyViolation'}}}"
)


def transcript(messages: list[tuple[str, str]], **attrs: Any) -> AgentRunIn:
    """A run as the importers make one: a step per message, the speaker as its agent."""
    steps = [
        StepIn(
            step_id=f"step-{n}",
            name=f"{role} message",
            status="success",
            started_at=T0 + timedelta(seconds=n),
            output_summary=text,
            agent=role.split(" (")[0],
        )
        for n, (role, text) in enumerate(messages, start=1)
    ]
    return AgentRunIn(
        run_id="t-1",
        agent_name="team",
        started_at=T0,
        status="failure",
        steps=steps,
        attributes=attrs,
    )


MAGENTIC = [
    ("human", "How likely is rain in Seattle in early September?"),
    ("Orchestrator (thought)", "Initial plan: WebSurfer searches historical weather data."),
    ("Orchestrator (-> WebSurfer)", "Please search for historical rainfall in Seattle, September 2020-2023."),
    ("WebSurfer", FILTERED),
]


def test_agent_names_are_normalised() -> None:
    assert agent_key("Websurfer") == agent_key("WebSurfer") == agent_key("web_surfer")
    assert same_agent("Websurfer", "WebSurfer") and same_agent("Orchestrator (thought)", "orchestrator")
    assert not same_agent("WebSurfer", "FileSurfer") and not same_agent(None, "WebSurfer")


def test_roles_come_from_the_protocol_and_the_structure_not_the_names() -> None:
    tr = read_transcript(transcript(MAGENTIC))
    assert [t.role for t in tr.turns] == ["user", "lead", "instruction", "worker"]
    assert tr.turns[2].addressee == "WebSurfer"
    single = read_transcript(transcript([("user", "hi"), ("assistant", "hello"), ("tool", "[]")]))
    assert [t.role for t in single.turns] == ["user", "assistant", "tool"]


def test_a_guardrail_that_ends_the_run_is_the_decisive_step_and_its_agent_responsible() -> None:
    run = transcript(MAGENTIC)
    kinds = {(s.kind, s.n) for s in detect(read_transcript(run))}
    assert {("blocked", 4), ("error", 4), ("terminal_failure", 4), ("instruction_failed", 3)} <= kinds
    report = analyze_run(run)
    assert not report.insufficient_evidence
    assert report.root_cause_step == 4 and report.responsible_agent == "WebSurfer"
    assert report.category == "tool_permission"  # a content filter refused the request
    known = {e.evidence_id for e in report.evidence_index}
    assert report.root_cause is not None and set(report.root_cause.evidence_ids) <= known
    assert "ev_sig_blocked_step-4" in report.root_cause.evidence_ids
    decisive = next(e for e in report.evidence_index if e.evidence_id == "ev_candidate_step-4")
    assert decisive.attributes["contributions"]  # the scorer's reasons are shown
    assert all(set(h.evidence_ids) <= known for h in report.hypotheses)
    assert all(a.step != 4 for a in report.alternatives) and report.step_probability is not None


def test_a_lead_turn_failing_before_the_agent_it_called_spoke_blames_that_agent() -> None:
    run = transcript(
        [
            ("human", "Summarise the paper."),
            ("Orchestrator (thought)", "Plan: Assistant reads and summarises."),
            ("Orchestrator (-> Assistant)", "Please summarise the attached paper."),
            ("Orchestrator (thought)", "Handing over.\n" + FILTERED),
        ]
    )
    report = analyze_run(run)
    assert report.responsible_agent == "Assistant" and report.root_cause_step == 4


def test_a_user_who_dictated_the_unexpected_action_is_responsible() -> None:
    expected = {
        "instruction": "You want to cancel order #W1 because you no longer need it.",
        "actions": [
            {"name": "cancel_pending_order", "arguments": {"order_id": "#W1", "reason": "no longer needed"}}
        ],
        "outputs": [],
    }
    run = transcript(
        [
            ("system", "policy"),
            ("user", "Hi, I want to cancel an order."),
            ("assistant", "Which order?"),
            ("user", "Cancel order #W2, please, I ordered it by mistake."),
            ("assistant", "Cancelling #W2. Confirm?"),
            ("user", "yes"),
            ("assistant", ""),
        ],
        expected=expected,
    )
    run.tool_calls.append(
        ToolCallIn(
            call_id="c1",
            step_id="step-7",
            tool_name="cancel_pending_order",
            status="success",
            args_json={"order_id": "#W2", "reason": "ordered by mistake"},
        )
    )
    signals = {(s.kind, s.n) for s in detect(read_transcript(run))}
    assert ("unexpected_action", 7) in signals and ("user_directed", 4) in signals
    report = analyze_run(run)
    assert same_agent(report.responsible_agent, "User") and report.root_cause_step == 4


def test_a_transcript_with_nothing_wrong_in_it_is_insufficient_evidence() -> None:
    run = transcript([("user", "What is 2+2?"), ("assistant", "It is 4."), ("user", "thanks")])
    report = analyze_run(run)
    assert report.insufficient_evidence and report.root_cause_step is None


def test_structured_runs_keep_their_report_and_gain_the_step_number(run_001: dict[str, Any]) -> None:
    report = analyze_run(parse_run(run_001))
    assert report.category == "tool_schema_mismatch"
    assert report.root_cause is not None and report.root_cause.step_id == "step-002"
    assert report.root_cause_step == 2 and report.alternatives == []


def test_the_scorer_file_tolerates_new_and_old_features() -> None:
    model = Localizer.from_json({"step_weights": {"sig_blocked": 2.0, "gone": 1.0}, "agent_weights": {}})
    assert model.step.weights[model.step.features.index("sig_blocked")] == 2.0
    assert "gone" not in model.step.features and not model.agent.weights.any()
    assert shipped().meta["method"] and json.dumps(shipped().to_json())
    s = Scorer(("a", "b"), model.step.weights[:2] * 0 + [1.0, -1.0])
    assert s.contributions(s.weights * 0 + [1.0, 0.0]) == {"a": 1.0}


def test_cross_validation_refits_without_the_scored_runs() -> None:
    runs = [
        transcript(MAGENTIC),
        transcript(MAGENTIC[:3] + [("WebSurfer", "I clicked 'Next'.")] + MAGENTIC[3:]),
    ]
    exs = [example(f"r{i}", "g", read_transcript(r), len(r.steps), "WebSurfer") for i, r in enumerate(runs)]
    assert folds(exs * 3, 2) == [[0, 2, 4], [1, 3, 5]]
    preds = cross_validate(exs)
    assert set(preds) == {"r0", "r1"} and all(p is not None for p in preds.values())
    assert all(s.kind != "blocked" for e in without(exs, "blocked") for s in e.signals)
    model = fit(exs)
    loc = localize(exs[0].transcript, exs[0].signals, model)
    assert loc is not None and loc.step.n == 4 and model.meta["fitted_on"] == 2


def test_importers_keep_the_end_of_long_messages_and_the_task_expectations(tmp_path: Any) -> None:
    long = "x" * (SUMMARY * 2) + "\nTraceback (most recent call last): boom"
    f = tmp_path / "m.json"
    f.write_text(json.dumps([{"role": "human", "content": "task"}, {"role": "WebSurfer", "content": long}]))
    run = next(magentic_runs(f))
    assert run.steps[1].output_summary and run.steps[1].output_summary.endswith("boom")
    tau = tmp_path / "t.json"
    task = {
        "instruction": "cancel #W1",
        "actions": [{"name": "cancel", "kwargs": {"id": 1}}],
        "outputs": ["3"],
    }
    tau.write_text(json.dumps([{"task_id": 5, "reward": 0, "info": {"task": task}, "traj": []}]))
    got = next(tau_bench_runs(tau)).attributes["expected"]
    assert got == {
        "instruction": "cancel #W1",
        "actions": [{"name": "cancel", "arguments": {"id": 1}}],
        "outputs": ["3"],
    }


def test_the_lead_policy_reads_who_answers_for_a_led_run() -> None:
    from opslab.rca.policy import LeadPolicy, attribute, fit_policy

    plan = [
        ("human", "What was the highest sale price in Mission Bay in 2021?"),
        ("Orchestrator (-> WebSurfer)", "Please search for high-rise sales in Mission Bay in 2021."),
        (
            "WebSurfer",
            "I typed 'Mission Bay high-rise sales 2021' into the search box. Results: a news page.",
        ),
    ]
    declared = transcript(
        [
            *plan,
            ("Orchestrator (thought)", "Request satisfied."),
            ("Orchestrator (thought)", "FINAL ANSWER: 1"),
        ]
    )
    tr = read_transcript(declared)
    got = attribute(tr, detect(tr), LeadPolicy())
    assert got is not None and got.agent == "orchestrator" and got.evidence[0].kind == "false_success"
    assert not got.pinpoints  # it says who accepted a wrong answer, not where the answer went wrong
    stopped = read_transcript(transcript([*plan, ("WebSurfer", FILTERED)]))
    got = attribute(stopped, detect(stopped), LeadPolicy())
    assert got is not None and got.agent == "websurfer" and "guardrail" in got.rule and got.pinpoints
    nagged = [*plan]
    for i in range(4):
        nagged += [
            ("Orchestrator (thought)", f"WebSurfer did not open the sales page as asked (attempt {i})."),
            ("Orchestrator (-> WebSurfer)", f"Please open the sales page, attempt {i}."),
            ("WebSurfer", f"I clicked a banner number {i}."),
        ]
    nag = read_transcript(transcript([*nagged, ("Orchestrator (thought)", "FINAL ANSWER: unknown")]))
    assert attribute(nag, detect(nag), LeadPolicy(blame_min=3)).agent == "websurfer"  # type: ignore[union-attr]
    assert attribute(nag, detect(nag), LeadPolicy(blame_min=8)).agent == "orchestrator"  # type: ignore[union-attr]
    # No lead, no policy; the thresholds are fitted to the runs given.
    assert (
        attribute(read_transcript(transcript([("user", "hi"), ("assistant", "x")])), [], LeadPolicy()) is None
    )
    runs = [(nag, detect(nag), "websurfer"), (tr, detect(tr), "orchestrator")]
    assert fit_policy(runs).blame_min <= 4
    # Fitted on runs without a lead, the thresholds are the middle of the grid: none come from nowhere.
    assert fit_policy([]) == LeadPolicy(blame_min=5, blame_share=0.5, built_max=2)
