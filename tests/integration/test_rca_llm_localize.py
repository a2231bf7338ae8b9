"""LLM mode for transcripts against a real chat-completions server: the three strategies, the
deterministic ranking as the prior, and the citation rule (a step or agent without a cited item on it
is dropped)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from opslab.llm import ChatClient
from opslab.llm.fake import fake_chat_app
from opslab.rca import analyze_run
from opslab.rca.llm_localize import LlmLocalizer
from opslab.rca.model import RcaReport
from opslab.serving import ServerThread
from tests.unit.test_rca_transcripts import transcript

# A lead that keeps sending its worker to the wrong site; the worker is finally blocked.
MESSAGES: list[tuple[str, str]] = [("human", "Find the 2021 sale price of the tallest tower in Mission Bay.")]
for i in range(6):
    MESSAGES += [
        ("Orchestrator (-> WebSurfer)", f"Please look on the city's parking portal, page {i}."),
        ("WebSurfer", f"I opened page {i} of the parking portal; it lists parking permits only."),
        ("Orchestrator (thought)", "Updated ledger: progress is being made, keep going."),
    ]
MESSAGES += [("WebSurfer", "Error code: 403 Forbidden. Access denied.")]
TARGET = 2  # the first instruction sent the worker the wrong way


def prompt_of(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return json.loads(messages[-1]["content"])


def oracle(target: int, *, agent: str = "Orchestrator", cite: bool = True) -> Any:
    """A model that knows the answer: it halves towards ``target`` and names it, citing its turn."""

    def answer(messages: list[dict[str, Any]]) -> str:
        system, prompt = messages[0]["content"], prompt_of(messages)
        q = prompt["question"]
        if "which half" in system.lower():
            first = [int(n) for n in re.findall(r"First half: steps (\d+)-(\d+)", q)[0]]
            return json.dumps(
                {"half": "first" if first[0] <= target <= first[1] else "second", "reason": "r"}
            )
        if "one step at a time" in system:
            n = int(re.findall(r"Is step (\d+)", q)[0])
            ids = [f"ev_turn_step-{n}"] if cite else []
            return json.dumps({"decisive": n == target, "agent": agent, "evidence_ids": ids, "reason": "r"})
        ids = [f"ev_turn_step-{target}"] if cite else ["ev_turn_step-1"]
        return json.dumps(
            {
                "step": target,
                "agent": agent,
                "evidence_ids": ids,
                "reason": f"It opened the wrong site [ev_turn_step-{target}]. A database deadlock did it.",
                "confidence": "high",
            }
        )

    return answer


def localise(strategy: str, script: Any) -> tuple[RcaReport, RcaReport, list[dict[str, Any]]]:
    run = transcript(MESSAGES)
    base = analyze_run(run)
    app = fake_chat_app(script)
    with ServerThread(app) as server:
        client = ChatClient(server.url, model="fake", timeout_s=5.0)
        report = LlmLocalizer(client, strategy)(run, base)  # type: ignore[arg-type]
        client.close()
    return base, report, app.state.requests


@pytest.mark.parametrize("strategy", ["all_at_once", "step_by_step", "binary_search"])
def test_each_strategy_names_a_cited_step_and_keeps_the_rules_as_an_alternative(strategy: str) -> None:
    base, report, requests = localise(strategy, oracle(TARGET))
    assert base.root_cause_step != TARGET and base.responsible_agent is not None
    assert report.root_cause_step == TARGET and report.responsible_agent == "Orchestrator"
    assert report.generated_by == "rules+llm" and report.root_cause is not None
    assert report.root_cause.step_id == f"step-{TARGET}"
    assert f"ev_turn_step-{TARGET}" in report.root_cause.evidence_ids
    turn = next(e for e in report.evidence_index if e.evidence_id == f"ev_turn_step-{TARGET}")
    assert turn.kind == "turn" and turn.attributes["cited_by"] == "llm"
    assert report.alternatives[0].step == base.root_cause_step  # the rules' answer, kept
    assert report.hypotheses[0].source == "llm"
    if strategy != "step_by_step":  # its answer per step carries its own reason
        assert "It opened the wrong site" in report.root_cause.reason
    assert "deadlock" not in report.model_dump_json()  # a sentence citing nothing never reaches it
    # The prior travels with every prompt.
    prior = prompt_of(requests[0]["messages"])["prior"]
    assert prior[0] == {
        "step": base.root_cause_step,
        "agent": base.responsible_agent,
        "p": base.step_probability,
    }
    if strategy == "binary_search":
        assert len(requests) <= 5  # log2(len / 4) halvings and one final question, not one per step
    if strategy == "all_at_once":
        assert len(requests) == 1


def test_step_by_step_asks_about_the_prior_s_candidates_in_the_order_they_happened() -> None:
    _, _, requests = localise("step_by_step", oracle(-1))
    asked = [int(re.findall(r"Is step (\d+)", prompt_of(r["messages"])["question"])[0]) for r in requests]
    assert asked == sorted(asked) and len(asked) >= 2


def test_a_step_without_a_cited_item_on_it_is_dropped() -> None:
    base, report, _ = localise("all_at_once", oracle(TARGET, cite=False))
    assert report.root_cause_step == base.root_cause_step and report.generated_by == "rules"
    assert "dropped, no cited evidence on it" in report.notes[-1]


def test_an_agent_not_backed_by_a_cited_item_is_replaced_by_the_step_s_author() -> None:
    _, report, _ = localise("all_at_once", oracle(TARGET, agent="DatabaseAdmin"))
    assert report.root_cause_step == TARGET and report.responsible_agent == "Orchestrator"
    assert any("'DatabaseAdmin' dropped" in n for n in report.notes)


@pytest.mark.parametrize("reply", [None, "not json", json.dumps({"half": "middle"})])
def test_model_failures_leave_the_deterministic_report(reply: str | None) -> None:
    base, report, _ = localise("binary_search", lambda _: reply)
    assert report.root_cause_step == base.root_cause_step
    assert report.responsible_agent == base.responsible_agent and report.generated_by == "rules"
    assert "skipped" in report.notes[-1]


def test_structured_runs_are_left_to_the_rules(run_001: dict[str, Any]) -> None:
    from opslab.telemetry import parse_run

    run = parse_run(run_001)
    base = analyze_run(run)
    with ServerThread(fake_chat_app(oracle(TARGET))) as server:
        report = LlmLocalizer(ChatClient(server.url, model="m"))(run, base)
    assert report == base


def test_an_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="binary_search"):
        LlmLocalizer(ChatClient("http://127.0.0.1:9", model="m"), "guess")  # type: ignore[arg-type]


def test_the_rca_job_uses_the_configured_strategy(tmp_path: Any) -> None:
    import httpx

    from opslab.api import create_app
    from opslab.config import Settings
    from tests.integration.test_rca_jobs import wait_done

    run = transcript(MESSAGES).model_dump(mode="json")
    with ServerThread(fake_chat_app(oracle(TARGET))) as llm:
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite:///{tmp_path / 'llm.db'}",
            llm_base_url=llm.url,
            llm_model="fake",
            rca_llm_strategy="binary_search",
        )
        with (
            ServerThread(create_app(settings)) as server,
            httpx.Client(base_url=server.url, timeout=30) as api,
        ):
            api.post("/agent-runs", json=run).raise_for_status()
            rca_id = api.post(f"/agent-runs/{run['run_id']}/rca-runs").json()["rca_run_id"]
            report = wait_done(api, rca_id)["report"]
    assert report["root_cause_step"] == TARGET and report["generated_by"] == "rules+llm"
    assert any(n.startswith("llm binary_search: step 2") for n in report["notes"])


def test_rca_eval_with_an_llm_strategy(tmp_path: Any) -> None:
    from tests.conftest import FIXTURES
    from tests.e2e.conftest import clean_env, run_cli

    tau, truth = FIXTURES / "tau_sample.json", FIXTURES / "tau_sample_truth.json"
    args = ("rca", "eval", "--format", "tau-bench", "--ground-truth", str(truth), str(tau), "--json")
    with ServerThread(fake_chat_app(lambda _: json.dumps({"half": "first", "step": 1}))) as llm:
        env = clean_env(OPSLAB_DATA_DIR=str(tmp_path / "d"), OPSLAB_LLM_BASE_URL=llm.url)
        r = run_cli(*args, "--llm", "binary_search", env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["llm"] == "binary_search" and json.loads(r.stdout)["n"] == 2
        r = run_cli(*args, "--llm", "guess", env=env)
        assert r.returncode == 2 and "--llm" in r.stdout + r.stderr
    r = run_cli(*args, "--llm", "all_at_once", env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "d")))
    assert r.returncode == 2 and "OPSLAB_LLM_BASE_URL" in r.stdout + r.stderr
