"""The service's RCA uses the localiser OPSLAB_RCA_MODEL names (a file `opslab rca train` wrote), the
shipped one otherwise; a bad file stops the service from starting, naming the setting."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab.api import create_app
from opslab.config import Settings
from opslab.errors import InvalidInput
from opslab.rca.scoring import shipped
from opslab.serving import ServerThread
from tests.unit.test_rca_transcripts import MAGENTIC, transcript


def _rca(settings: Settings) -> dict[str, Any]:
    run = transcript(MAGENTIC).model_copy(update={"run_id": "team-1"}).model_dump(mode="json")
    # force: the same run's RCA is kept (idempotent); this one is a new analysis by this service.
    return _rca_of(settings, run, force=True)


def test_the_service_uses_the_model_the_setting_names(settings: Settings, tmp_path: Path) -> None:
    default = _rca(settings)["report"]
    assert default["root_cause_step"] == 4 and not default["insufficient_evidence"]
    # A model that abstains below a confidence no answer reaches: the report says so, candidates listed.
    unsure = tmp_path / "unsure.json"
    unsure.write_text(json.dumps(dataclasses.replace(shipped(), abstain_below=1.01).to_json()))
    report = _rca(settings.model_copy(update={"rca_model": unsure}))["report"]
    assert report["insufficient_evidence"] and report["root_cause_step"] is None
    assert report["alternatives"][0]["step"] == 4


@pytest.mark.parametrize("content", [None, "{broken", '{"step_weights": {"x": "y"}}'])
def test_a_bad_model_file_stops_the_service_naming_the_setting(
    settings: Settings, tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "model.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInput) as err:
        create_app(settings.model_copy(update={"rca_model": path}))
    assert err.value.details["errors"][0]["field"] == "OPSLAB_RCA_MODEL"


def _rca_of(settings: Settings, run: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        api.post("/agent-runs", json=run).raise_for_status()
        asked = api.post(f"/agent-runs/{run['run_id']}/rca-runs", params={"force": "true"} if force else {})
        rca_id = asked.json()["rca_run_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body: dict[str, Any] = api.get(f"/agent-runs/rca-runs/{rca_id}").json()
            if body["status"] in ("done", "failed"):
                return body
            time.sleep(0.05)
    raise AssertionError("RCA not finished")


def test_the_service_reads_the_user_s_categories_from_the_knowledge_folder(
    settings: Settings, tmp_path: Path
) -> None:
    knowledge = tmp_path / "kb"
    knowledge.mkdir()
    (knowledge / "rca-categories.yaml").write_text(
        "categories:\n"
        "  - id: license_expired\n"
        "    title: The vendor licence expired\n"
        "    patterns: ['licen[cs]e (has )?expired']\n"
        "    description: The vendor stopped serving the tool when its licence ran out.\n"
        "    actions: [{type: process, title: Renew the licence, priority: high}]\n"
    )
    run = {
        "run_id": "licence-1",
        "agent_name": "geo-agent",
        "status": "failure",
        "started_at": "2026-10-02T08:00:00Z",
        "steps": [{"step_id": "s1", "name": "geocode", "status": "failure"}],
        "tool_calls": [
            {"call_id": "c1", "step_id": "s1", "tool_name": "geocode", "status": "failure",
             "started_at": "2026-10-02T08:00:01Z", "error_message": "license expired on 2026-10-01"}
        ],
    }  # fmt: skip
    report = _rca_of(settings.model_copy(update={"knowledge_dir": knowledge}), run)["report"]
    assert report["category"] == "license_expired"
    assert report["action_items"][0]["title"] == "Renew the licence"
    bad = "categories:\n  - id: x_y\n    description: d\n    patterns: ['[']\n"
    (knowledge / "rca-categories.yaml").write_text(bad)
    with pytest.raises(InvalidInput) as err:
        create_app(settings.model_copy(update={"knowledge_dir": knowledge}))
    assert "patterns[0]" in err.value.message or "patterns[0]" in str(err.value.details)
