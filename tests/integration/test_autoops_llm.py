"""The fix responder with an LLM, against a real local chat-completions server: the model may phrase the
runbook's fix, but every step must come from the cited runbook's actions (a step of its own is flagged and
ranked below them), destructive advice is refused whatever it cites, and a wrong citation or a broken model
leaves the runbook's words."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opslab.api import create_app
from opslab.autoops import FixRequest, FixSuggestion, suggest_fix
from opslab.config import Settings
from opslab.knowledge import KnowledgeBase
from opslab.llm import ChatClient
from opslab.llm.fake import fake_chat_app
from opslab.serving import ServerThread

Script = Callable[[list[dict[str, Any]]], str | None]
OOM_ERROR = "Out of memory during build"
RUNBOOK_FIRST = "Increase CI runner memory limit to 2–4GB or enable build cache"


def says(**answer: Any) -> Script:
    return lambda _messages: json.dumps(answer)


@contextmanager
def model(script: Script) -> Iterator[tuple[ChatClient, list[dict[str, Any]]]]:
    app = fake_chat_app(script)
    with ServerThread(app) as server:
        chat = ChatClient(server.url, model="fake-model", timeout_s=5)
        try:
            yield chat, app.state.requests
        finally:
            chat.close()


def ask(script: Script, error: str = OOM_ERROR) -> FixSuggestion:
    with model(script) as (chat, _):
        return suggest_fix(FixRequest(error=error), KnowledgeBase.load(), chat=chat)


def test_a_phrasing_of_the_runbooks_own_actions_is_taken() -> None:
    with model(
        says(
            suggestion="Give the runner 4 GB of memory and turn the build cache on.",
            document_id="build-oom",
            actions=["Give the runner 4 GB of memory and turn the build cache on", "Lower build parallelism"],
        )
    ) as (chat, requests):
        fix = suggest_fix(FixRequest(error=OOM_ERROR), KnowledgeBase.load(), chat=chat)
    assert fix.source == "llm" and fix.document_id == "build-oom"
    assert fix.suggestion == "Give the runner 4 GB of memory and turn the build cache on."
    assert [a.from_runbook for a in fix.actions] == [True, True] and not fix.refused
    assert fix.actions[0].runbook_action == RUNBOOK_FIRST
    prompt = requests[0]["messages"][-1]["content"]
    assert "build-oom" in prompt and RUNBOOK_FIRST in prompt and OOM_ERROR in prompt


def test_destructive_advice_citing_the_runbook_is_refused() -> None:
    fix = ask(says(suggestion="Delete the .git folder and force-push to main.", document_id="build-oom"))
    assert fix.source == "knowledge" and fix.suggestion == RUNBOOK_FIRST
    assert [r.reason for r in fix.refused] == ["force-push"]
    assert "force-push" in fix.refused[0].text and all(a.from_runbook for a in fix.actions)
    assert ".git" not in json.dumps(fix.actions[0].model_dump())


def test_a_destructive_step_refuses_the_whole_answer() -> None:
    fix = ask(
        says(
            suggestion="Give the runner 4 GB of memory.",
            document_id="build-oom",
            actions=["Give the runner 4 GB of memory", "then run rm -rf / to free space"],
        )
    )
    assert fix.source == "knowledge" and [r.reason for r in fix.refused] == ["recursive delete"]
    assert [a.text for a in fix.actions] == [RUNBOOK_FIRST, "Lower build parallelism"]


def test_a_step_not_from_the_runbook_is_flagged_and_ranked_below_the_runbooks() -> None:
    fix = ask(
        says(
            suggestion="Upgrade Node.js to version 22 and switch the bundler to esbuild.",
            document_id="build-oom",
            actions=[
                "Upgrade Node.js to version 22 and switch the bundler to esbuild",
                "Lower build parallelism",
            ],
        )
    )
    assert fix.source == "knowledge" and fix.suggestion == RUNBOOK_FIRST  # its own advice is not the answer
    texts = [(a.text, a.from_runbook, a.note) for a in fix.actions]
    assert texts == [
        (RUNBOOK_FIRST, True, None),
        ("Lower build parallelism", True, None),
        ("Upgrade Node.js to version 22 and switch the bundler to esbuild", False, "not from the runbook"),
    ]


def test_a_suggestion_mixing_the_runbook_with_advice_of_its_own_is_not_taken() -> None:
    fix = ask(
        says(
            suggestion="Give the runner 4 GB of memory. Also migrate the monorepo to Bazel remote execution.",
            document_id="build-oom",
        )
    )
    assert fix.source == "knowledge" and fix.suggestion == RUNBOOK_FIRST
    assert fix.actions[0].text == "Give the runner 4 GB of memory."
    assert fix.actions[-1].note == "not from the runbook" and "Bazel" in fix.actions[-1].text


@pytest.mark.parametrize(
    "script",
    [
        says(suggestion="Give the runner 4 GB of memory.", document_id="build-timeout"),
        says(suggestion="Give the runner 4 GB of memory."),
        lambda _messages: "not json",
        lambda _messages: None,  # the server answers 500
    ],
)
def test_a_wrong_citation_or_a_broken_model_leaves_the_runbook(script: Script) -> None:
    fix = ask(script)
    assert fix.source == "knowledge" and fix.suggestion == RUNBOOK_FIRST and fix.document_id == "build-oom"


def test_the_service_holds_the_model_to_the_runbook_on_suggest_fix(tmp_path: Any) -> None:
    app = fake_chat_app(
        says(suggestion="Delete the .git folder and force-push to main.", document_id="build-oom")
    )
    with ServerThread(app) as server:
        settings = Settings(data_dir=tmp_path / "data", llm_base_url=server.url, llm_model="fake-model")
        with TestClient(create_app(settings)) as api:
            body = {"status": "failed", "duration": 2.34, "error": OOM_ERROR}  # the seed Monitor's output
            answer = api.post("/suggest_fix", json=body)
    assert answer.status_code == 200, answer.text
    fix = answer.json()
    assert fix["source"] == "knowledge" and fix["suggestion"] == RUNBOOK_FIRST
    assert fix["refused"][0]["reason"] == "force-push" and app.state.requests
