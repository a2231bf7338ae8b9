"""The dashboard's pages over a real service on SQLite and PostgreSQL: the runs list filtered and paginated
in SQL (the same filters as ``GET /agent-runs``), the fleet series, a run's page, error pages that name the
field, and the auth the API has (sign-in cookie, CSRF on the dashboard's forms, the read-only token)."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from opslab.api import create_app
from opslab.config import Settings
from opslab.serving import ServerThread
from tests.integration.test_auth_and_egress import plan

NOW = datetime.now(UTC).replace(microsecond=0)


def _run(n: int, **over: Any) -> dict[str, Any]:
    at = NOW - timedelta(hours=n)
    run: dict[str, Any] = {
        "run_id": f"r-{n:03d}",
        "agent_name": "support" if n % 2 else "billing",
        "agent_version": f"1.{n % 3}",
        "model": "m-small" if n % 2 else "m-large",
        "environment": "prod" if n % 4 else "staging",
        "started_at": at.isoformat(),
        "ended_at": (at + timedelta(seconds=5)).isoformat(),
        "status": "success",
        "steps": [{"step_id": "s1", "name": "plan", "status": "success", "latency_ms": 100 + n}],
        "tool_calls": [],
        "cost": {"total_cost_usd": 0.01 * n},
        "attributes": {},
    }
    run.update(over)
    return run


@pytest.fixture
def fleet(settings: Settings) -> Iterator[httpx.Client]:
    """A service with 30 runs over 30 hours: every 5th failed (every 10th on a rate-limited tool), three
    of them lab trials of experiment ``ab``."""
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        runs = []
        for n in range(30):
            over: dict[str, Any] = {}
            if n % 5 == 0:
                over = {"status": "failure", "error_type": "ToolError", "error_message": f"boom {n}"}
            if n % 10 == 0:
                over["tool_calls"] = [
                    {
                        "call_id": "c1",
                        "step_id": "s1",
                        "tool_name": "search",
                        "status": "failure",
                        "error_class": "RateLimited",
                        "error_message": "HTTP 429 Too Many Requests",
                    }
                ]
                over["error_message"] = "the tool failed"
            if n in (3, 4, 7):
                over["attributes"] = {"lab.experiment": "ab", "lab.variant": "x"}
            runs.append(_run(n, **over))
        assert c.post("/agent-runs/batch", json=runs).status_code == 200
        yield c


def listed(html: str) -> list[str]:
    return re.findall(r'href="/ui/runs/(r-\d{3})"', html)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "failure"}, {"r-000", "r-005", "r-010", "r-015", "r-020", "r-025"}),
        ({"agent": "billing", "environment": "staging"}, {f"r-{n:03d}" for n in range(0, 30, 4)}),
        ({"version": "1.2"}, {f"r-{n:03d}" for n in range(2, 30, 3)}),
        ({"experiment": "ab"}, {"r-003", "r-004", "r-007"}),
        ({"q": "too many"}, {"r-000", "r-010", "r-020"}),  # a failed tool call's error text
        ({"q": "BOOM 1"}, {"r-015"}),  # the run's own error, case-insensitive
        ({"q": "100%_"}, set()),  # LIKE wildcards are text, not patterns
    ],
)
def test_the_runs_page_filters_in_sql_like_the_api(
    fleet: httpx.Client, query: dict[str, str], expected: set[str]
) -> None:
    page = fleet.get("/ui/runs", params=query)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert set(listed(page.text)) == expected
    api_query = {{"agent": "agent_name", "version": "agent_version"}.get(k, k): v for k, v in query.items()}
    api = fleet.get("/agent-runs", params=api_query).json()
    assert {r["run_id"] for r in api["items"]} == expected


def test_time_range_and_pagination_keep_the_filters(fleet: httpx.Client) -> None:
    since = (NOW - timedelta(hours=10, minutes=30)).strftime("%Y-%m-%dT%H:%M")
    until = (NOW - timedelta(hours=2, minutes=30)).strftime("%Y-%m-%dT%H:%M")
    page = fleet.get("/ui/runs", params={"since": since, "until": until, "agent": "support"})
    assert set(listed(page.text)) == {"r-003", "r-005", "r-007", "r-009"}

    everything: list[str] = []
    url: str | None = "/ui/runs?environment=prod"
    while url:
        html = fleet.get(url).text
        everything += listed(html)
        nxt = re.search(r'rel="next" href="([^"]+)"', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
        assert url is None or "environment=prod" in url
    assert everything == [f"r-{n:03d}" for n in range(30) if n % 4]  # newest first, each once


def test_the_fleet_on_top_counts_the_window_and_splits_cost(fleet: httpx.Client) -> None:
    series = fleet.get("/metrics/series", params={"hours": 48}).json()
    assert series["bucket"] == "hour" and sum(p["runs"] for p in series["points"]) == 30
    assert sum(p["successes"] for p in series["points"]) == 24
    by_model = {c["key"]: c for c in series["cost_by_model"]}
    assert by_model["m-small"]["runs"] == 15 and by_model["m-small"]["cost_usd"] == pytest.approx(2.25)
    daily = fleet.get("/metrics/series", params={"hours": 24 * 7}).json()
    assert daily["bucket"] == "day" and sum(p["runs"] for p in daily["points"]) == 30
    page = fleet.get("/ui/runs", params={"hours": 48}).text
    assert "Fleet, last 48 h" in page and "80.0 %" in page and 'aria-label="Cost by model' in page


def test_bad_filters_are_an_error_page_naming_the_field(fleet: httpx.Client) -> None:
    bad = fleet.get("/ui/runs", params={"until": "last tuesday"})
    assert bad.status_code == 422 and "<html" in bad.text and "until" in bad.text
    wrong = fleet.get("/ui/runs", params={"status": "error"})
    assert wrong.status_code == 422 and "<code>status</code>" in wrong.text
    assert wrong.text.count("Input should be") == 1  # the field's message once, not again as a headline
    assert bad.text.count("expected a date and time") == 1
    assert fleet.get("/agent-runs", params={"q": ""}).status_code == 422
    assert fleet.get("/agent-runs", params={"q": "a\x00b"}).status_code == 422
    assert fleet.get("/ui/runs", params={"q": "a\x00b"}).status_code == 422
    missing = fleet.get("/ui/runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.text


def test_a_run_page_shows_the_waterfall_and_starts_an_rca(
    fleet: httpx.Client, run_001: dict[str, Any]
) -> None:
    fleet.post("/agent-runs", json=run_001)
    page = fleet.get("/ui/runs/run-001-sufficient").text
    assert 'id="tl-step-002"' in page and 'id="tl-call-001"' in page and "No RCA of this run yet" in page
    started = fleet.post("/ui/runs/run-001-sufficient/rca", data={"csrf": ""}, follow_redirects=False)
    assert started.status_code == 303 and "?rca=" in started.headers["location"]
    rca_id = started.headers["location"].split("?rca=")[1].split("#")[0]
    for _ in range(100):
        if fleet.get(f"/agent-runs/rca-runs/{rca_id}").json()["status"] == "done":
            break
        time.sleep(0.1)
    done = fleet.get(started.headers["location"]).text
    assert "Root-cause step" in done and "Responsible agent" in done
    # each cited evidence id links to its timeline item; the decisive step is marked
    assert 'href="#tl-call-001"' in done and "root-cause step" in done


def _rca_page(fleet: httpx.Client, run_id: str) -> str:
    started = fleet.post(f"/ui/runs/{run_id}/rca", data={"csrf": ""}, follow_redirects=False)
    rca_id = started.headers["location"].split("?rca=")[1].split("#")[0]
    for _ in range(300):
        if fleet.get(f"/agent-runs/rca-runs/{rca_id}").json()["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    return fleet.get(started.headers["location"]).text


def test_the_rca_section_shows_the_chain_and_what_the_run_handled(fleet: httpx.Client) -> None:
    at = NOW.isoformat()
    typo = _run(900, run_id="r-typo", status="failure")
    typo["steps"] = [
        {"step_id": "s1", "name": "find", "status": "success", "output_summary": "ticket TCK-8812"},
        {"step_id": "s2", "name": "close", "status": "success"},
        {"step_id": "s3", "name": "notify", "status": "failure"},
    ]
    typo["tool_calls"] = [
        {"call_id": "c1", "step_id": "s2", "tool_name": "close", "status": "success", "started_at": at,
         "args_json": {"ticket": "TCK-8821"}},
        {"call_id": "c2", "step_id": "s3", "tool_name": "notify", "status": "failure", "started_at": at,
         "args_json": {"ticket": "TCK-8821"}, "status_code": 404, "error_message": "ticket not found"},
    ]  # fmt: skip
    fleet.post("/agent-runs", json=typo)
    page = _rca_page(fleet, "r-typo")
    assert "From cause to symptom" in page and 'href="#ev-ev_arg_c1"' in page and 'href="#tl-s2"' in page
    healthy = _run(901, run_id="r-retried")
    healthy["tool_calls"] = [
        {"call_id": "c1", "step_id": "s1", "tool_name": "kv", "status": "failure", "started_at": at,
         "error_message": "connection reset"},
        {"call_id": "c2", "step_id": "s1", "tool_name": "kv", "status": "success", "started_at": at},
    ]  # fmt: skip
    fleet.post("/agent-runs", json=healthy)
    page = _rca_page(fleet, "r-retried")
    assert "<dd>succeeded</dd>" in page and "Handled by the run (1)" in page and "retried" in page
    assert "Root-cause step" not in page


@pytest.fixture
def guarded(tmp_path: Any, db_url: str) -> Iterator[httpx.Client]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        api_token=SecretStr("ui-test-token-write-1"),
        read_token=SecretStr("ui-test-token-read-2"),
    )
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_with_a_token_the_dashboard_signs_in_and_guards_its_forms(
    guarded: httpx.Client, run_001: dict
) -> None:
    c = guarded
    assert c.post("/agent-runs", json=copy.deepcopy(run_001)).status_code == 201  # ingest: not the token
    away = c.get("/ui/runs/run-001-sufficient", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"].startswith("/ui/login?next=/ui/runs/")
    assert c.get("/ui/static/opslab.css").status_code == 200  # the sign-in page needs its stylesheet
    wrong = c.post("/ui/login", data={"token": "nope", "next": "/ui/runs"}, follow_redirects=False)
    assert (
        wrong.status_code == 401
        and "not accepted" in wrong.text
        and "opslab_ui" not in wrong.headers.get("set-cookie", "")
    )
    evil = c.post(
        "/ui/login",
        data={"token": "ui-test-token-write-1", "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert evil.status_code == 303 and evil.headers["location"] == "/ui"
    cookie = evil.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = c.get("/ui/runs/run-001-sufficient")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', page.text)
    assert csrf
    assert c.post("/ui/runs/run-001-sufficient/rca", data={}, follow_redirects=False).status_code == 403
    ok = c.post("/ui/runs/run-001-sufficient/rca", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert ok.status_code == 303
    assert c.get("/agent-runs").status_code == 200  # the cookie reads the API too
    assert c.post("/agent-runs/run-001-sufficient/rca-runs").status_code == 401  # but does not write it

    c.cookies.clear()
    c.post("/ui/login", data={"token": "ui-test-token-read-2", "next": "/ui/runs"})
    assert c.get("/ui/runs").status_code == 200
    page = c.get("/ui/runs/run-001-sufficient").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', page)
    assert csrf
    refused = c.post("/ui/runs/run-001-sufficient/rca", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert refused.status_code in (303, 401)
    assert refused.status_code == 401 or "login" in refused.headers["location"]


def test_a_canary_job_is_listed_and_its_dry_run_shown(fleet: httpx.Client) -> None:
    created = fleet.post("/canary/runs", json={"plan": plan("http://127.0.0.1:9"), "dry_run": True})
    assert created.status_code == 202, created.text
    job_id = created.json()["canary_run_id"]
    for _ in range(100):
        if fleet.get(f"/canary/runs/{job_id}").json()["status"] == "done":
            break
        time.sleep(0.1)
    listed = fleet.get("/ui/canaries").text
    assert f'href="/ui/canaries/jobs/{job_id}"' in listed and "dry run" in listed
    page = fleet.get(f"/ui/canaries/jobs/{job_id}").text
    assert "Dry run" in page and "DRY-RUN" in page
    assert fleet.get("/ui/canaries/jobs/no-such-job").status_code == 404


def test_with_public_reads_the_pages_open_but_acting_still_needs_the_token(
    tmp_path: Any, db_url: str, run_001: dict[str, Any]
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        api_token=SecretStr("ui-test-token-write-1"),
        public_reads=True,
    )
    with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        c.post("/agent-runs", json=run_001).raise_for_status()
        page = c.get("/ui/runs/run-001-sufficient")
        assert page.status_code == 200 and "Sign out" not in page.text
        refused = c.post("/ui/runs/run-001-sufficient/rca", data={"csrf": ""}, follow_redirects=False)
        assert refused.status_code == 401
        c.post("/ui/login", data={"token": "ui-test-token-write-1", "next": "/ui/runs"})
        signed = c.get("/ui/runs/run-001-sufficient").text
        assert "Sign out" in signed
        csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', signed)
        assert csrf
        ok = c.post("/ui/runs/run-001-sufficient/rca", data={"csrf": csrf.group(1)}, follow_redirects=False)
        assert ok.status_code == 303
