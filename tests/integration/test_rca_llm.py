"""The optional LLM pass against a real local chat-completions server: valid citations kept,
hallucinated ones dropped, failures fall back to the deterministic report."""

from __future__ import annotations

import json
from typing import Any

from opslab.llm import ChatClient
from opslab.llm.fake import evidence_ids_in_prompt, fake_chat_app
from opslab.rca import analyze_run
from opslab.rca.llm import LlmEnhancer
from opslab.serving import ServerThread
from opslab.telemetry import parse_run


def mixed_answer(messages: list[dict[str, Any]]) -> str:
    real = evidence_ids_in_prompt(messages)
    return json.dumps(
        {
            "summary": f"The order lookup tool rejected the call ({real[0]}).",
            "hypotheses": [
                {
                    "title": "API v2 rollout broke the order tool",
                    "description": "schema changed",
                    "confidence": "medium",
                    "evidence_ids": [real[0], real[1]],
                    "verification_steps": ["check the v2 changelog"],
                },
                {
                    "title": "Database outage",
                    "description": "invented",
                    "confidence": "high",
                    "evidence_ids": ["ev_db_outage-1"],
                },
                {
                    "title": "Half true",
                    "description": "one real, one invented",
                    "confidence": "high",
                    "evidence_ids": [real[0], "ev_tool_call-999"],
                },
                {"title": "No citation", "description": "trust me", "confidence": "high", "evidence_ids": []},
            ],
        }
    )


def test_valid_claims_are_kept_and_hallucinated_ones_dropped(run_001: dict[str, Any]) -> None:
    base = analyze_run(parse_run(run_001))
    app = fake_chat_app(mixed_answer)
    with ServerThread(app) as server:
        client = ChatClient(server.url, model="fake-model", api_key="k-123")
        report = LlmEnhancer(client)(parse_run(run_001), base)
        client.close()
    titles = [h.title for h in report.hypotheses]
    assert "API v2 rollout broke the order tool" in titles
    assert not {"Database outage", "Half true", "No citation"} & set(titles)
    assert report.generated_by == "rules+llm" and "3 claim(s) dropped" in report.notes[-1]
    assert report.summary.startswith("The order lookup tool rejected")
    assert report.hypotheses[0] == base.hypotheses[0]  # the rules' hypothesis keeps first place
    sent = app.state.requests[0]
    assert sent["model"] == "fake-model" and sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["summary", "hypotheses"]


def test_every_model_sentence_cites_evidence_or_is_dropped(run_001: dict[str, Any]) -> None:
    base = analyze_run(parse_run(run_001))
    cited = base.evidence_index[0].evidence_id

    def answer(messages: list[dict[str, Any]]) -> str:
        summary = (
            f"The order tool refused the call [{cited}]. Root cause: a database deadlock in payments. "
            "Engineers should roll back ev_invented-7."
        )
        return json.dumps({"summary": summary, "hypotheses": []})

    with ServerThread(fake_chat_app(answer)) as server:
        report = LlmEnhancer(ChatClient(server.url, model="m"))(parse_run(run_001), base)
    assert report.summary == f"The order tool refused the call [{cited}]."
    assert report.summary_by == "model" and report.model_sentences == [report.summary]
    assert "deadlock" not in report.model_dump_json() and "ev_invented" not in report.model_dump_json()
    assert "2 claim(s) dropped" in report.notes[-1]


def test_a_summary_citing_nothing_leaves_the_rules_summary(run_001: dict[str, Any]) -> None:
    base = analyze_run(parse_run(run_001))
    claim = "Root cause: a database deadlock in the payments service."
    answer = json.dumps({"summary": claim, "hypotheses": []})
    with ServerThread(fake_chat_app(lambda _: answer)) as server:
        report = LlmEnhancer(ChatClient(server.url, model="m"))(parse_run(run_001), base)
    assert report.summary == base.summary and report.summary_by == "rules" and report.model_sentences == []
    assert "deadlock" not in report.model_dump_json()


def test_an_endpoint_without_structured_output_is_asked_in_json_mode(run_001: dict[str, Any]) -> None:
    base = analyze_run(parse_run(run_001))
    app = fake_chat_app(mixed_answer, structured=False)
    with ServerThread(app) as server:
        report = LlmEnhancer(ChatClient(server.url, model="m"))(parse_run(run_001), base)
    formats = [r["response_format"]["type"] for r in app.state.requests]
    assert formats == ["json_schema", "json_object"]
    assert "API v2 rollout broke the order tool" in [h.title for h in report.hypotheses]


def test_a_failing_endpoint_is_retried(run_001: dict[str, Any]) -> None:
    base = analyze_run(parse_run(run_001))
    answers = iter([None, None])  # two 500s, then the answer

    def flaky(messages: list[dict[str, Any]]) -> str | None:
        return next(answers, mixed_answer(messages))

    app = fake_chat_app(flaky)
    with ServerThread(app) as server:
        report = LlmEnhancer(ChatClient(server.url, model="m", max_retries=2))(parse_run(run_001), base)
    assert len(app.state.requests) == 3 and report.generated_by == "rules+llm"


def test_a_summary_citing_unknown_evidence_is_not_taken(run_001: dict[str, Any]) -> None:
    base = analyze_run(parse_run(run_001))
    answer = json.dumps({"summary": "Caused by ev_made_up-1.", "hypotheses": []})
    with ServerThread(fake_chat_app(lambda _: answer)) as server:
        report = LlmEnhancer(ChatClient(server.url, model="m"))(parse_run(run_001), base)
    assert report.summary == base.summary


def test_errors_timeouts_and_garbage_fall_back(run_001: dict[str, Any]) -> None:
    run = parse_run(run_001)
    base = analyze_run(run)
    for app, timeout in (
        (fake_chat_app(lambda _: None), 5.0),
        (fake_chat_app(lambda _: "not json"), 5.0),
        (fake_chat_app(lambda _: "{}", delay_s=2.0), 0.3),
    ):
        with ServerThread(app) as server:
            report = LlmEnhancer(ChatClient(server.url, model="m", timeout_s=timeout))(run, base)
        assert report.hypotheses == base.hypotheses and report.summary == base.summary
    down = LlmEnhancer(ChatClient("http://127.0.0.1:9", model="m", timeout_s=1))(run, base)
    assert down.hypotheses == base.hypotheses and "llm skipped" in down.notes[-1]
