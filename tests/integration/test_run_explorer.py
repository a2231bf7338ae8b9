"""What was recorded reads back, on SQLite and PostgreSQL: a tool call's arguments, an LLM call's prompt
and completion (the OTel GenAI run whose messages sit on its LLM child span included), a span's attributes
and events, a native LLM step's messages; the model filter and the price table; one count per run;
export (JSON and OTLP, which the service takes back) and delete with everything kept for a run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opslab.api import ServerThread, create_app
from opslab.config import Settings
from tests.otlp_json import attrs, export, span

TRACE = "5b8efff798038103d269b633813fc60c"
ARG, PROMPT, ANSWER = "ZQ-7731-ARG", "PROMPT-MARK-5521", "ANSWER-MARK-9043"


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def native(run_id: str = "native-1", **changes: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "run_id": run_id,
        "agent_name": "support-agent",
        "model": "gpt-4o",
        "status": "failure",
        "started_at": "2026-01-05T10:00:00Z",
        "ended_at": "2026-01-05T10:00:04Z",
        "steps": [
            {
                "step_id": "s1",
                "name": "plan",
                "status": "success",
                "kind": "llm",
                "model": "gpt-4o",
                "tokens_prompt": 1200,
                "tokens_completion": 300,
                "input_messages": [{"role": "user", "content": f"Where is my order? {PROMPT}"}],
                "output_messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "t1", "name": "order_lookup", "arguments": '{"order_id": "x"}'}
                        ],
                    }
                ],
            },
            {"step_id": "s2", "name": "lookup", "status": "failure"},
        ],
        "tool_calls": [
            {
                "call_id": "c1",
                "step_id": "s2",
                "tool_name": "order_lookup",
                "status": "failure",
                "args_json": {"order_id": ARG},
                "status_code": 404,
            }
        ],
        "cost": {"tokens_prompt": 1200, "tokens_completion": 300},
    }
    run.update(changes)
    return run


def genai_trace() -> dict[str, Any]:
    messages_in = [{"role": "user", "parts": [{"type": "text", "content": f"Where is my parcel? {PROMPT}"}]}]
    messages_out = [{"role": "assistant", "parts": [{"type": "text", "content": f"Today. {ANSWER}"}]}]
    root = span(
        TRACE, "b000000000000001", "invoke_agent support", end=9, gen_ai__operation__name="invoke_agent"
    )
    llm = span(
        TRACE,
        "b000000000000002",
        "chat gpt-4o-mini",
        "b000000000000001",
        start=1,
        end=8,
        gen_ai__operation__name="chat",
        gen_ai__request__model="gpt-4o-mini",
        gen_ai__usage__input_tokens=100,
        gen_ai__usage__output_tokens=20,
        gen_ai__input__messages=json.dumps(messages_in),
        gen_ai__output__messages=json.dumps(messages_out),
    )
    llm["events"] = [
        {
            "name": "gen_ai.evaluation",
            "timeUnixNano": llm["endTimeUnixNano"],
            "attributes": attrs({"score": 1}),
        }
    ]
    return export([root, llm])


def ingested_count(api: httpx.Client) -> float:
    total = 0.0
    for line in api.get("/metrics").text.splitlines():
        if line.startswith("opslab_ingested_runs_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_tool_calls_arguments_and_an_llm_steps_messages_read_back(api: httpx.Client) -> None:
    assert api.post("/agent-runs", json=native()).status_code == 201
    timeline = api.get("/agent-runs/native-1/timeline").json()["items"]
    call = next(i for i in timeline if i["kind"] == "tool_call")
    assert call["detail"]["arguments"] == {"order_id": ARG} and call["detail"]["status_code"] == 404
    plan = next(i for i in timeline if i["id"] == "s1")["detail"]
    assert plan["kind"] == "llm" and (plan["tokens_in"], plan["tokens_out"]) == (1200, 300)
    assert PROMPT in plan["input_messages"][0]["content"]
    assert plan["output_messages"][0]["tool_calls"][0]["name"] == "order_lookup"
    node = api.get("/agent-runs/native-1/nodes/c1").json()
    assert node["kind"] == "tool_call" and node["detail"]["arguments"] == {"order_id": ARG}
    assert api.get("/agent-runs/native-1/nodes/nope").status_code == 404
    summary = api.get("/agent-runs/native-1").json()
    assert summary["cost"]["total_cost_usd"] > 0  # priced from the table: the run named its model and tokens
    assert summary["duration_ms"] == 4000.0


def test_an_otlp_llm_spans_prompt_completion_and_attributes_read_back(api: httpx.Client) -> None:
    before = ingested_count(api)
    body = genai_trace()
    child_first = export([body["resourceSpans"][0]["scopeSpans"][0]["spans"][1]])
    assert api.post("/v1/traces", json=child_first).status_code == 200
    assert api.post("/v1/traces", json=body).status_code == 200  # the root later: one run all the same
    assert ingested_count(api) - before == 1
    run = api.get(f"/agent-runs/{TRACE}").json()
    assert PROMPT in run["input"] and ANSWER in run["output"]
    tree = api.get(f"/agent-runs/{TRACE}/tree").json()["nodes"]
    llm = next(n for n in tree if n["kind"] == "llm")
    assert llm["detail"]["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    assert ANSWER in llm["detail"]["output_messages"][0]["content"]
    assert llm["detail"]["events"][0]["name"] == "gen_ai.evaluation"
    node = api.get(f"/agent-runs/{TRACE}/nodes/{llm['id']}").json()
    assert PROMPT in node["detail"]["input_messages"][0]["content"]
    page = api.get(f"/ui/runs/{TRACE}").text
    assert PROMPT in page and ANSWER in page


def test_the_runs_list_filters_by_model(api: httpx.Client) -> None:
    api.post("/agent-runs", json=native("m-1"))
    api.post("/agent-runs", json=native("m-2", model="gpt-4o-mini-2024-07-18"))
    ids = [r["run_id"] for r in api.get("/agent-runs", params={"model": "gpt-4o"}).json()["items"]]
    assert ids == ["m-1"]
    long = [
        r["run_id"]
        for r in api.get("/agent-runs", params={"model": "gpt-4o-mini-2024-07-18"}).json()["items"]
    ]
    assert long == ["m-2"]


def test_a_run_exports_whole_and_its_otlp_export_is_taken_back(api: httpx.Client, tmp_path: Any) -> None:
    api.post("/agent-runs", json=native())
    exported = api.get("/agent-runs/native-1/export").json()
    assert exported["run"]["tool_calls"][0]["args_json"] == {"order_id": ARG}
    assert exported["summary"]["run_id"] == "native-1" and exported["schema_version"] == 2
    otlp = api.get("/agent-runs/native-1/export", params={"format": "otlp"}).json()
    taken = api.post("/v1/traces", json=otlp)
    assert taken.status_code == 200 and taken.json()["partialSuccess"] == {}, taken.text
    (again,) = taken.json()["opslab"]["runs"]
    moved = api.get(f"/agent-runs/{again['run_id']}/timeline").json()["items"]
    assert any(i["kind"] == "tool_call" and i["detail"]["arguments"] == {"order_id": ARG} for i in moved)
    assert any(PROMPT in json.dumps(i["detail"]["input_messages"]) for i in moved if i["kind"] == "step")
    api.post("/v1/traces", json=genai_trace())
    spans = api.get(f"/agent-runs/{TRACE}/export", params={"format": "otlp"}).json()
    sent = {s["spanId"] for rs in spans["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}
    assert sent == {"b000000000000001", "b000000000000002"}  # as received


def test_a_deleted_run_goes_with_all_kept_for_it_and_prune_keeps_the_recent(api: httpx.Client) -> None:
    api.post("/agent-runs", json=native())
    api.post("/agent-runs/native-1/scores", json={"name": "helpful", "value": 1})
    api.post("/v1/traces", json=genai_trace())
    assert api.delete("/agent-runs/native-1").status_code == 204
    assert api.get("/agent-runs/native-1").status_code == 404
    assert api.delete("/agent-runs/native-1").status_code == 404
    assert api.delete(f"/agent-runs/{TRACE}").status_code == 204
    assert api.get(f"/v1/traces/{TRACE}").status_code == 404  # its spans went with it
    api.post("/agent-runs", json=native("old", started_at="2025-01-01T00:00:00Z", ended_at=None))
    api.post("/agent-runs", json=native("new", started_at="2026-11-01T00:00:00Z", ended_at=None))
    pruned = api.delete("/agent-runs", params={"older_than": "180d"})
    assert pruned.json()["deleted"] >= 1
    assert api.get("/agent-runs/old").status_code == 404 and api.get("/agent-runs/new").status_code == 200
    assert api.delete("/agent-runs", params={"older_than": "soon"}).status_code == 422


def test_langfuse_metadata_is_decoded_and_a_failed_run_names_its_error(api: httpx.Client) -> None:
    trace = "7a8efff798038103d269b633813fc60c"
    root = span(
        trace,
        "c000000000000001",
        "support",
        end=5,
        langfuse__observation__type="agent",
        langfuse__observation__level="ERROR",
        langfuse__observation__status_message="order lookup failed",
        langfuse__trace__metadata__team='"support"',
        langfuse__trace__metadata__tier="2",
    )
    assert api.post("/v1/traces", json=export([root])).status_code == 200
    run = api.get(f"/agent-runs/{trace}").json()
    assert run["metadata"] == {"team": "support", "tier": 2}
    assert run["status"] == "failure" and run["error_type"] == "ERROR"


def test_the_run_page_shows_a_selected_node_whole(api: httpx.Client) -> None:
    api.post("/agent-runs", json=native())
    page = api.get("/ui/runs/native-1").text
    assert ARG in page and PROMPT in page  # the timeline rows hold the call's arguments and the prompt
    call = api.get("/ui/runs/native-1", params={"node": "c1"}).text
    assert 'id="node"' in call and "Arguments" in call and ARG in call and "404" in call
    api.post("/v1/traces", json=genai_trace())
    llm = api.get(f"/ui/runs/{TRACE}", params={"node": "b000000000000002"}).text
    assert "gen_ai.request.model" in llm and "gpt-4o-mini" in llm and ANSWER in llm
    assert "gen_ai.evaluation" in llm  # its events
    missing = api.get("/ui/runs/native-1", params={"node": "nope"})
    assert missing.status_code == 404 and "<html" in missing.text
    listing = api.get("/ui/runs", params={"model": "gpt-4o"}).text
    assert "native-1" in listing and ">Model<" in listing and "1200 → 300" in listing
