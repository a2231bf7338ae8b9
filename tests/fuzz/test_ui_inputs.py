"""The dashboard's pages are not in the OpenAPI document (HTML, not the API), so schemathesis does not
reach them: hypothesis does, on SQLite and PostgreSQL. Any query value, path id and form field — control
characters, NUL, odd unicode, huge and non-finite numbers, odd dates, hostile ids — gets a page or a 4xx
page (naming the field for a bad value), never a 5xx, and a refused form writes nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opslab.api import ServerThread, create_app
from opslab.config import Settings
from tests.conftest import examples

EXAMPLES = int(os.environ.get("OPSLAB_FUZZ_EXAMPLES", "0")) * 5 or examples(50)
ODD = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "",
            "\x00",
            "-1",
            "1e999",
            "nan",
            "inf",
            "9" * 40,
            "2026-02-30T25:61",
            "0001-01-01T00:00",
            "../..",
            "%00",
        ]
    ),
)
RUNS_PARAMS = (
    "status",
    "agent",
    "version",
    "environment",
    "since",
    "until",
    "experiment",
    "q",
    "range",
    "cursor",
)


@pytest.fixture
def ui(db_url: str, tmp_path: Path, run_001: dict[str, Any]) -> Iterator[httpx.Client]:
    config = Settings(data_dir=tmp_path / "data", database_url=db_url, job_workers=1)
    with ServerThread(create_app(config)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        client.post("/agent-runs", json=run_001).raise_for_status()
        yield client


def _page_or_4xx(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.url, r.status_code, r.text[-500:])
    if r.status_code >= 400:
        assert "<html" in r.text


FAST = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FAST
@given(params=st.dictionaries(st.sampled_from((*RUNS_PARAMS, "hours", "page")), ODD, max_size=5))
def test_any_query_gets_a_page_or_a_4xx(ui: httpx.Client, params: dict[str, str]) -> None:
    for path in ("/ui/runs", "/ui/experiments", "/ui/canaries", "/ui/incidents"):
        _page_or_4xx(ui.get(path, params=params))


@FAST
@given(ident=ODD, other=ODD)
def test_any_id_gets_a_page_or_a_404(ui: httpx.Client, ident: str, other: str) -> None:
    a, b = quote(ident, safe="") or "x", quote(other, safe="") or "y"
    for path in (
        f"/ui/runs/{a}",
        f"/ui/experiments/{a}/{b}",
        f"/ui/experiments/{a}/{b}/trials/{a}",
        f"/ui/canaries/history/{a}",
        f"/ui/canaries/jobs/{a}",
        f"/ui/incidents/{a}",
    ):
        _page_or_4xx(ui.get(path))


def _rca_run_ids(ui: httpx.Client) -> set[str]:
    return {item["rca_run_id"] for item in ui.get("/agent-runs/run-001-sufficient/rca-runs").json()["items"]}


@FAST
@given(form=st.dictionaries(st.sampled_from(("csrf", "force", "decision", "token", "next")), ODD, max_size=4))
def test_any_form_is_answered_and_a_refused_one_writes_nothing(
    ui: httpx.Client, form: dict[str, str]
) -> None:
    before = _rca_run_ids(ui)
    r = ui.post("/ui/runs/run-001-sufficient/rca", data=form, follow_redirects=False)
    assert r.status_code < 500, (form, r.status_code, r.text[-500:])
    if r.status_code >= 400:
        # What a refused form must not do is start an RCA; one an earlier example started may still be
        # running and change its state meanwhile, so the jobs are compared by id.
        assert _rca_run_ids(ui) == before
    for path in ("/ui/incidents/no-such/decide", "/ui/login", "/ui/logout"):
        assert ui.post(path, data=form, follow_redirects=False).status_code < 500
