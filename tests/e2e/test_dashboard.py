"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright) against a seeded
service: every page opens with no serious accessibility violation (axe-core) and no request leaving the
machine; runs filter in place; a run's RCA runs live and its evidence links land on timeline items; an
experiment's comparison and a trial open; a canary shows its windows; an incident's action is approved
with one click and the incident resolves. Screenshots go to ``OPSLAB_UI_SCREENSHOTS`` when it is set
(``make ui-screenshots`` writes docs/img/)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from opslab.lab import root_key
from tests.conftest import REQUIRE
from tests.e2e.conftest import wait_for
from tests.e2e.dashboard_world import World, break_the_pool, build_world
from tests.otlp_json import export, span

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("OPSLAB_UI_SCREENSHOTS")

playwright_api = pytest.importorskip("playwright.sync_api")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not Path(CHROMIUM).exists():
        if REQUIRE:
            pytest.fail("chromium is not installed (apt-get install chromium chromium-driver)")
        pytest.skip("chromium is not installed")
    yield from build_world(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A browser tab on the service that records every request leaving localhost."""

    def __init__(self, browser: object, base: str) -> None:
        self.base = base
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", self._request)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def _request(self, request: object) -> None:
        host = urlparse(request.url).hostname  # type: ignore[attr-defined]
        if host not in ("127.0.0.1", "localhost", None) and not request.url.startswith("data:"):  # type: ignore[attr-defined]
            self.outside.append(request.url)  # type: ignore[attr-defined]

    def open(self, path: str) -> object:
        self.page.goto(self.base + path)
        return self.page

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)

    def serious_violations(self) -> list[str]:
        results = axe_api.Axe().run(self.page)
        found = results.response["violations"]
        return [
            f"{v['id']}: {v['help']} ({len(v['nodes'])})"
            for v in found
            if v["impact"] in ("serious", "critical")
        ]


@pytest.fixture
def tab(browser: object, world: World) -> Iterator[Page]:
    page = Page(browser, world.url)
    yield page
    page.page.close()


def test_every_page_is_accessible_and_stays_on_this_machine(tab: Page, world: World) -> None:
    pages = {
        "runs": "/ui/runs?hours=8760",
        "run": "/ui/runs/run-001-sufficient",
        "experiments": "/ui/experiments",
        "experiment": f"/ui/experiments/{root_key(world.project / '.lab' / 'runs')}/{world.lab_run}",
        "canaries": "/ui/canaries",
        "incidents": "/ui/incidents",
        "builds": "/ui/builds",
    }
    for name, path in pages.items():
        page = tab.open(path)
        assert page.title().endswith("· opslab"), path  # type: ignore[attr-defined]
        assert tab.serious_violations() == [], path
        tab.shot(name)
    assert tab.outside == [] and tab.errors == []


def test_filtering_runs_updates_the_list_in_place(tab: Page) -> None:
    page = tab.open("/ui/runs")
    rows = page.locator("#runs-table tbody tr")  # type: ignore[attr-defined]
    assert rows.count() == 3
    page.get_by_label("Agent").fill("data-processor")  # type: ignore[attr-defined]
    page.get_by_label("Agent").press("Enter")  # type: ignore[attr-defined]
    page.wait_for_url(re.compile(r"agent=data-processor"))  # type: ignore[attr-defined]
    wait_for(lambda: rows.count(), lambda n: n == 1, 10, "the filtered list")
    assert "run-002-insufficient" in rows.first.inner_text()
    page.get_by_label("Search").fill("no such error anywhere")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Apply").click()  # type: ignore[attr-defined]
    page.get_by_text("No runs match").wait_for()  # type: ignore[attr-defined]


def test_run_rca_live_then_follow_an_evidence_link(tab: Page) -> None:
    page = tab.open("/ui/runs")
    page.get_by_role("link", name=re.compile("^magentic-")).click()  # type: ignore[attr-defined]
    page.get_by_role("button", name="Run RCA").click()  # type: ignore[attr-defined]
    page.locator("#rca .summary").wait_for(timeout=30_000)  # type: ignore[attr-defined]
    facts = page.locator("#rca .facts").inner_text()  # type: ignore[attr-defined]
    assert "Root-cause step" in facts and "Responsible agent" in facts
    assert page.locator(".wf.decisive").count() == 1  # type: ignore[attr-defined]
    tab.shot("run-rca")
    link = page.locator("#rca .hyp a.cite[href^='#tl-']").first  # type: ignore[attr-defined]
    target = link.get_attribute("href")[1:]
    link.click()
    assert page.evaluate("document.activeElement.id") == target  # type: ignore[attr-defined]
    assert page.locator(f"[id='{target}']").is_visible()  # type: ignore[attr-defined]
    assert tab.serious_violations() == [] and tab.errors == []


def test_an_experiment_compares_its_variants_and_opens_a_trial(tab: Page, world: World) -> None:
    page = tab.open("/ui/experiments")
    page.get_by_role("link", name=world.lab_run).click()  # type: ignore[attr-defined]
    page.get_by_role("heading", name=re.compile("Variant comparison")).wait_for()  # type: ignore[attr-defined]
    plot = page.get_by_role("img", name=re.compile("Success rate per variant"))  # type: ignore[attr-defined]
    label = plot.get_attribute("aria-label")
    assert "careful" in label and "hasty" in label
    page.locator("a.status").first.click()  # type: ignore[attr-defined]
    page.get_by_role("heading", name="Input").wait_for()  # type: ignore[attr-defined]
    text = page.locator("main").inner_text()  # type: ignore[attr-defined]
    assert "Output" in text and "Logs" in text and "State diff" in text
    assert tab.serious_violations() == []
    tab.shot("trial")


Box = tuple[float, float, float, float]  # x, y, width, height


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("width", [1280, 1600, 1920])
def test_the_experiment_charts_neither_overlap_nor_leave_the_window(
    tab: Page, world: World, width: int, tmp_path: Path
) -> None:
    page = tab.page
    page.set_viewport_size({"width": width, "height": 1000})  # type: ignore[attr-defined]
    tab.open(f"/ui/experiments/{root_key(world.project / '.lab' / 'runs')}/{world.lab_run}")
    charts = page.locator("section[aria-labelledby='cmp-h'] svg.chart")  # type: ignore[attr-defined]
    charts.first.wait_for()
    boxes: list[Box] = []
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None
        boxes.append((box["x"], box["y"], box["width"], box["height"]))
    assert len(boxes) == 4, boxes  # success, and the difference of each of the three metrics
    inner = page.evaluate("document.documentElement.clientWidth")  # type: ignore[attr-defined]
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[0] + a[2] <= inner, f"chart {i} leaves the window at {width} px: {a}"
        for j, b in enumerate(boxes[i + 1 :], start=i + 1):
            assert not _overlap(a, b), f"charts {i} and {j} overlap at {width} px: {a} {b}"
    assert page.evaluate("document.documentElement.scrollWidth") <= inner  # type: ignore[attr-defined]
    folder = Path(SHOTS) if SHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"experiment-{width}.png"), full_page=True)  # type: ignore[attr-defined]


def test_a_canary_shows_its_abab_windows(tab: Page) -> None:
    page = tab.open("/ui/canaries")
    page.locator("a[href^='/ui/canaries/history/']").first.click()  # type: ignore[attr-defined]
    chart = page.get_by_role("img", name=re.compile("p95 per window"))  # type: ignore[attr-defined]
    assert re.search(r"1A [\d.]+ ms, 2B [\d.]+ ms", chart.get_attribute("aria-label"))
    assert page.locator("table tbody tr").count() >= 4  # type: ignore[attr-defined]
    assert tab.serious_violations() == []
    tab.shot("canary")


def test_approve_a_pending_action_and_watch_the_incident_resolve(tab: Page, world: World) -> None:
    incident = break_the_pool(world)
    page = tab.open("/ui/incidents")
    page.get_by_role("link", name=incident).click()  # type: ignore[attr-defined]
    page.get_by_role("heading", name="Waiting for approval").wait_for()  # type: ignore[attr-defined]
    assert "Knowledge used" in page.locator("main").inner_text()  # type: ignore[attr-defined]
    assert tab.serious_violations() == []
    tab.shot("incident")
    page.get_by_role("button", name="Approve").click()  # type: ignore[attr-defined]
    page.locator("#incident[data-status='resolved']").wait_for(timeout=90_000)  # type: ignore[attr-defined]
    assert page.get_by_role("button", name="Approve").count() == 0  # type: ignore[attr-defined]
    with world.http() as http:
        audit = http.get("/agent/audit", params={"incident_id": incident}).json()["records"]
    assert any(r["decision"] == "approved" and "dashboard" in r["detail"] for r in audit), audit


def test_the_keyboard_reaches_the_content_first(tab: Page) -> None:
    page = tab.open("/ui/runs")
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    assert page.evaluate("document.activeElement.id") == "main"  # type: ignore[attr-defined]
    page.keyboard.press("Shift+Tab")  # type: ignore[attr-defined]
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")  # type: ignore[attr-defined]
    assert outline == "solid"


def test_a_span_selected_on_the_run_page_shows_its_conversation_and_attributes(
    tab: Page, world: World
) -> None:
    trace = "6c8efff798038103d269b633813fc60c"
    question, answer = "Where is my parcel ZX-19?", "It left the depot this morning."
    messages_in = [
        {"role": "system", "parts": [{"type": "text", "content": "You are the shop's support agent."}]},
        {"role": "user", "parts": [{"type": "text", "content": question}]},
    ]
    messages_out = [
        {"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}
    ]
    spans = [
        span(trace, "d000000000000001", "invoke_agent support", end=12,
             gen_ai__operation__name="invoke_agent", gen_ai__agent__name="support"),
        span(trace, "d000000000000002", "chat gpt-4o-mini", "d000000000000001", start=1, end=9,
             gen_ai__operation__name="chat", gen_ai__system="openai", gen_ai__request__model="gpt-4o-mini",
             gen_ai__response__model="gpt-4o-mini-2024-07-18", gen_ai__usage__input_tokens=212,
             gen_ai__usage__output_tokens=38, gen_ai__input__messages=json.dumps(messages_in),
             gen_ai__output__messages=json.dumps(messages_out)),
        span(trace, "d000000000000003", "execute_tool track_parcel", "d000000000000001", start=9, end=11,
             gen_ai__operation__name="execute_tool", gen_ai__tool__name="track_parcel",
             gen_ai__tool__call__arguments=json.dumps({"parcel_id": "ZX-19"})),
    ]  # fmt: skip
    with world.http() as http:
        assert http.post("/v1/traces", json=export(spans, service="support-app")).status_code == 200
    page = tab.open(f"/ui/runs/{trace}")
    page.get_by_role("link", name="chat gpt-4o-mini").first.click()  # type: ignore[attr-defined]
    page.wait_for_url(re.compile(r"node=d000000000000002"))  # type: ignore[attr-defined]
    detail = page.locator("#node")  # type: ignore[attr-defined]
    detail.wait_for()
    text = detail.inner_text()
    assert question in text and answer in text and "gen_ai.request.model" in text and "212" in text
    assert tab.serious_violations() == []
    tab.shot("run-span")
    assert tab.outside == [] and tab.errors == []
