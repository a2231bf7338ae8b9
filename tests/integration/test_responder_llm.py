"""The optional LLM diagnosis against a real local chat-completions server: an answer citing evidence
and a runbook that exist is taken; invented ids, a wrong runbook or a broken server leave the rules'
diagnosis standing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from opslab.llm import ChatClient
from opslab.llm.fake import fake_chat_app
from opslab.responder import Incident
from opslab.serving import ServerThread
from tests.unit.responder_fakes import FakeClock, World, make_responder, warm_up


def offered_ids(messages: list[dict[str, Any]]) -> list[str]:
    data = json.loads(messages[-1]["content"])
    return [e["evidence_id"] for e in data["evidence_index"]]


def answer(**fields: Any) -> Callable[[list[dict[str, Any]]], str]:
    def script(messages: list[dict[str, Any]]) -> str:
        ids = offered_ids(messages)
        pool_ids = [i for i in ids if i.startswith("obs:pool") or i.startswith("log:")]
        body = {
            "category": "db_pool_exhaustion",
            "summary": f"Connections leak until the pool is empty ({pool_ids[0]}).",
            "root_cause": "a code path never returns its connection",
            "evidence_ids": pool_ids,
            "runbook_id": "db-pool-exhaustion",
            "confidence": 0.9,
        }
        body.update(fields)
        return json.dumps(body)

    return script


def run_incident(script: Callable[[list[dict[str, Any]]], str | None]) -> tuple[Incident, dict[str, Any]]:
    app = fake_chat_app(script)
    with ServerThread(app) as server:
        world = World(FakeClock())
        chat = ChatClient(server.url, model="fake-model", timeout_s=5)
        responder, _, _ = make_responder(world, checkpointer=InMemorySaver(), chat=chat)
        warm_up(responder)
        world.inject("db_pool")
        responder.clock.sleep(30)
        responder.poll_once()
        responder.clock.sleep(30)
        incident = responder.poll_once()
        chat.close()
    assert incident is not None and incident.diagnosis is not None
    return incident, app.state.requests[0] if app.state.requests else {}


def test_a_well_cited_llm_diagnosis_is_taken() -> None:
    incident, sent = run_incident(answer())
    d = incident.diagnosis
    assert d is not None and d.source == "llm" and d.summary.startswith("Connections leak")
    assert d.runbook_id == "db-pool-exhaustion" and d.evidence_ids
    assert sent["model"] == "fake-model" and sent["response_format"] == {"type": "json_object"}
    assert incident.status == "resolved"


@pytest.mark.parametrize(
    "bad",
    [
        {"evidence_ids": ["obs:pool.health", "obs:made_up"]},
        {"evidence_ids": []},
        {"summary": "Caused by log:999."},
        {"runbook_id": "no-such-runbook"},
        {"runbook_id": "bad-deploy"},
        {"category": "cosmic_rays"},
    ],
)
def test_bad_citations_drop_the_llm_answer(bad: dict[str, Any]) -> None:
    incident, _ = run_incident(answer(**bad))
    d = incident.diagnosis
    assert d is not None and d.source == "rules" and d.category == "db_pool_exhaustion"
    assert "llm answer dropped" in d.notes[-1]
    assert incident.status == "resolved"


def test_a_failing_llm_leaves_the_rules_standing() -> None:
    for script in (lambda _: None, lambda _: "not json"):
        incident, _ = run_incident(script)
        assert incident.diagnosis is not None and incident.diagnosis.source == "rules"
        assert "llm skipped" in incident.diagnosis.notes[-1]
