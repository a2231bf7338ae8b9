"""The instrumentation people already use, for real, against a live ``opslab serve``.

Each agent (``sdk_agents/``) runs in its own process, instrumented with the real SDK the way its users do
it and pointed at opslab as docs/telemetry.md says, calling a real (fake) OpenAI-compatible server and a
tool that times out. Each trace must become a run with the model's token counts, the failing tool call,
an RCA naming that tool, and the session, user and tags the SDK sent. One service serves the module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab.llm.fake import fake_chat_app, usage_of
from opslab.serving import ServerThread
from tests.e2e.conftest import OPSLAB, Service, clean_env, wait_for, wait_http
from tests.ports import free_port

AGENTS = Path(__file__).parent / "sdk_agents"
SECRET = "ingest-secret-for-the-sdk-tests"
ANSWER = "Let me look that order up for you."
MESSAGES = [
    {"role": "system", "content": "You are a support agent for an online shop."},
    {"role": "user", "content": "Where is order A-1001?"},
]
USAGE = usage_of(MESSAGES, ANSWER)
TOKENS = (USAGE["prompt_tokens"], USAGE["completion_tokens"])


@dataclass
class World:
    service: Service
    llm_url: str
    api: httpx.Client

    def run_agent(self, name: str) -> str:
        env = clean_env(
            OPSLAB_URL=self.service.url,
            FAKE_LLM_URL=self.llm_url,
            INGEST_SECRET=SECRET,
            EXPECTED_USAGE=json.dumps(TOKENS),
            # Langfuse, configured only by the environment (docs/telemetry.md)
            LANGFUSE_BASE_URL=self.service.url,
            LANGFUSE_PUBLIC_KEY="pk-lf-opslab",
            LANGFUSE_SECRET_KEY=SECRET,
            LANGFUSE_FLUSH_INTERVAL="0.2",
            OPENAI_BASE_URL=self.llm_url,
            OPENAI_API_KEY="sk-test-not-a-real-key",
            TRACELOOP_TELEMETRY="false",
            OTEL_SDK_DISABLED="false",
            PYTHONPATH=str(AGENTS),
        )
        done = subprocess.run(
            [sys.executable, str(AGENTS / f"{name}.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        trace_id: str = json.loads(lines[-1])["trace_id"]
        assert len(trace_id) == 32, done.stdout
        return trace_id

    def run_of(self, trace_id: str) -> dict[str, Any]:
        found: dict[str, Any] = wait_for(
            lambda: self.api.get(f"/agent-runs/{trace_id}").json(),
            lambda run: run.get("run_id") == trace_id and run["counts"]["failed_tool_calls"] >= 1,
            60,
            f"the run of trace {trace_id}",
        )
        return found

    def rca(self, run_id: str) -> dict[str, Any]:
        started = self.api.post(f"/agent-runs/{run_id}/rca-runs")
        assert started.status_code in (200, 202), started.text
        rid = started.json()["rca_run_id"]
        done: dict[str, Any] = wait_for(
            lambda: self.api.get(f"/agent-runs/rca-runs/{rid}").json(),
            lambda view: view["status"] in ("done", "failed"),
            60,
            f"RCA {rid}",
        )
        return done


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("sdks")
    port = free_port()
    log = tmp / "serve.log"
    env = clean_env(OPSLAB_DATA_DIR=str(tmp / "data"), OPSLAB_INGEST_SECRET=SECRET)
    with ServerThread(fake_chat_app(lambda messages: ANSWER)) as llm:
        proc = subprocess.Popen(
            [OPSLAB, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        service = Service(proc, f"http://127.0.0.1:{port}", log)
        try:
            wait_http(service.url + "/", proc, log)
            with httpx.Client(base_url=service.url, timeout=30) as api:
                yield World(service, f"{llm.url}/v1", api)
        finally:
            service.stop()


def check_run(
    world: World, trace_id: str, *, tokens: tuple[int, int], session: bool = True, messages: bool = True
) -> Any:
    run = world.run_of(trace_id)
    assert (run["tokens_prompt"], run["tokens_completion"]) == tokens, run
    assert run["model"] and run["model"].startswith("gpt-4o-mini"), run
    assert run["status"] == "failure" and run["source"] == "otlp"
    items = world.api.get(f"/agent-runs/{trace_id}/timeline").json()["items"]
    tools = [i for i in items if i["kind"] == "tool_call"]
    assert [(t["name"], t["status"]) for t in tools] == [("order_lookup_api", "failure")], tools
    assert "timed out" in tools[0]["summary"]
    report = world.rca(trace_id)
    assert report["status"] == "done" and "order_lookup_api" in json.dumps(report["report"]), report
    if session:
        assert (run["session_id"], run["user_id"]) == ("sess-sdk", "user-7"), run
    # Every span the SDK sent belongs to the run.
    trace = world.api.get(f"/v1/traces/{trace_id}").json()
    assert trace["runs"] == [trace_id] and all(s["run_id"] == trace_id for s in trace["spans"]), trace
    if messages:  # the LLM call's prompt and completion read back, as the SDK recorded them
        nodes = world.api.get(f"/agent-runs/{trace_id}/tree").json()["nodes"]
        llm = [n for n in nodes if n["kind"] == "llm" and n["detail"]["input_messages"]]
        assert llm, [(n["kind"], sorted(n["detail"]["attributes"])) for n in nodes]
        detail = llm[0]["detail"]
        asked = [(m["role"], m["content"]) for m in detail["input_messages"]]
        assert ("user", "Where is order A-1001?") in asked, asked
        assert ANSWER in json.dumps(detail["output_messages"]), detail["output_messages"]
        page = world.api.get(f"/ui/runs/{trace_id}", params={"node": llm[0]["id"]}).text
        assert ANSWER in page and "Where is order A-1001?" in page
    return run


def test_phoenix_register_with_openinference(world: World) -> None:
    trace_id = world.run_agent("phoenix_agent")
    run = check_run(world, trace_id, tokens=TOKENS)
    assert run["input"] == "Where is order A-1001?" and "checkout" in run["tags"]
    listed = world.api.get("/agent-runs", params={"session_id": "sess-sdk", "tag": "checkout"}).json()
    assert trace_id in [r["run_id"] for r in listed["items"]]


def test_openllmetry_traceloop_sdk(world: World) -> None:
    trace_id = world.run_agent("traceloop_agent")
    run = check_run(world, trace_id, tokens=TOKENS)
    assert run["agent_name"] == "support"


def test_otel_sdk_with_gzip_counts_the_agent_and_its_llm_child_once(world: World) -> None:
    trace_id = world.run_agent("otel_agent")
    run = check_run(world, trace_id, tokens=TOKENS, session=False, messages=False)
    assert run["agent_name"] == "support"
    assert run["total_cost_usd"] is not None and run["total_cost_usd"] > 0  # priced from the price table


def test_the_openai_v2_instrumentation_puts_the_prompt_on_the_llm_span_and_the_run_reads_it(
    world: World,
) -> None:
    trace_id = world.run_agent("openai_v2_agent")
    run = check_run(world, trace_id, tokens=TOKENS)
    # The agent span holds no input of its own: the run's input is its LLM call's question.
    assert run["input"] == "Where is order A-1001?" and run["output"] == ANSWER, run


def test_langfuse_sdk_configured_by_its_environment(world: World) -> None:
    trace_id = world.run_agent("langfuse_agent")
    run = check_run(world, trace_id, tokens=TOKENS)
    assert "checkout" in run["tags"]


def test_a_wrong_ingest_secret_is_refused_for_every_sdk_path(world: World) -> None:
    for headers in ({"X-Ingest-Secret": "wrong"}, {"Authorization": "Basic cGs6d3Jvbmc="}):
        r = world.api.post("/v1/traces", json={"resourceSpans": []}, headers=headers)
        assert r.status_code == 401, r.text
        r = world.api.post("/api/public/otel/v1/traces", json={"resourceSpans": []}, headers=headers)
        assert r.status_code == 401, r.text
