"""A client generated from the service's OpenAPI document by openapi-python-client works: every 2xx answer
it reads is typed (none is ``None`` for want of a schema) and an SSE stream comes back as its text."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from opslab.api import create_app
from opslab.config import Settings
from opslab.serving import ServerThread

PACKAGE = "opslab_generated_client"
DONE = ("done", "failed")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    tmp = tmp_path_factory.mktemp("client")
    app = create_app(Settings(data_dir=tmp / "data"), migrate=False)
    spec = tmp / "openapi.json"
    spec.write_text(json.dumps(app.openapi()))
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(tmp / PACKAGE),
        ],  # fmt: skip
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The only operations it cannot describe are the OTLP receivers' protobuf bodies (OTLP exporters
    # speak to those, not a generated client).
    skipped = [line for line in done.stdout.splitlines() if line.startswith("WARNING parsing")]
    assert all("/v1/" in line for line in skipped), done.stdout
    sys.path.insert(0, str(tmp))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp))
        for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
            del sys.modules[name]


def api(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def test_a_run_round_trips_through_the_generated_client(
    generated: ModuleType, settings: Settings, run_001: dict[str, Any]
) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    ingest = api("telemetry.ingest_run_agent_runs_post")
    get_run = api("telemetry.get_run_agent_runs_run_id_get")
    add_score = api("telemetry.add_score_agent_runs_run_id_scores_post")
    create_rca = api("rca.create_rca_run_agent_runs_run_id_rca_runs_post")
    get_rca = api("rca.get_rca_run_agent_runs_rca_runs_rca_run_id_get")
    stream = api("rca.stream_rca_run_rca_runs_rca_run_id_stream_get")
    with ServerThread(create_app(settings)) as server:
        client = generated.Client(base_url=server.url, timeout=30)
        body = models.AgentRunIn.from_dict(run_001)
        first = ingest.sync_detailed(client=client, body=body)
        again = ingest.sync_detailed(client=client, body=body)  # the 200 of an upsert is typed too
        assert (first.status_code, first.parsed.status) == (201, "created")
        assert (again.status_code, again.parsed.status) == (200, "updated")
        assert isinstance(again.parsed, models.IngestResult)
        run = get_run.sync(run_id="run-001-sufficient", client=client)
        assert isinstance(run, models.RunSummary)
        assert (run.agent_name, run.counts.steps, run.counts.failed_tool_calls) == (
            "customer-support-agent",
            4,
            2,
        )
        score = add_score.sync(
            run_id="run-001-sufficient",
            client=client,
            body=models.ScoreIn.from_dict({"name": "helpfulness", "value": 0.25, "source": "user"}),
        )
        assert isinstance(score, models.ScoreView) and score.value == 0.25
        created = create_rca.sync(run_id="run-001-sufficient", client=client)
        repeated = create_rca.sync_detailed(run_id="run-001-sufficient", client=client)
        assert isinstance(created, models.RcaRunCreated)
        assert repeated.status_code == 200 and repeated.parsed.rca_run_id == created.rca_run_id
        deadline = time.monotonic() + 60
        while (view := get_rca.sync(rca_run_id=created.rca_run_id, client=client)).status not in DONE:
            assert time.monotonic() < deadline, view
            time.sleep(0.2)
        text = stream.sync(rca_run_id=created.rca_run_id, client=client)
        assert isinstance(text, str) and '"status":"done"' in text
        last = max(int(line[3:]) for line in text.splitlines() if line.startswith("id:"))
        ended = stream.sync_detailed(rca_run_id=created.rca_run_id, client=client, last_event_id=str(last))
        assert ended.status_code == 204  # an EventSource that saw every event stops here
