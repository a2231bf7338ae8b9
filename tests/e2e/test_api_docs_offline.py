"""``/docs`` and ``/redoc`` with no internet: ``opslab serve`` serves Swagger UI and ReDoc from the package,
their pages name no other host, and in a headless Chromium that can reach nothing but the service both
render the service's OpenAPI 3.1 document with no request leaving the machine. With a token set they
answer as the guard has always answered them; their assets stay open like the dashboard's."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import REQUIRE
from tests.e2e.conftest import Service, clean_env
from tests.e2e.test_dashboard import ARGS, CHROMIUM

playwright_api = pytest.importorskip("playwright.sync_api")

REFERENCE = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
ABSOLUTE = re.compile(r"https?://|//[a-z0-9]", re.IGNORECASE)
LOCAL = ("127.0.0.1", "localhost", None)  # None: data: and blob: URLs, made in the page
TOKEN = "tok-docs-offline-4f7c2a9e1b"
VENDOR = "/ui/static/vendor"


def test_the_pages_name_no_other_host_and_their_assets_are_served(
    start_service: Callable[..., Service],
) -> None:
    svc = start_service()
    with httpx.Client(base_url=svc.url, timeout=30) as http:
        for path in ("/docs", "/redoc"):
            page = http.get(path)
            assert page.status_code == 200, path
            references = REFERENCE.findall(page.text)
            assert references, path
            assert [r for r in references if ABSOLUTE.match(r)] == [], (path, references)
            assert not re.search(r"https?://", page.text), path
            for ref in references:
                assert ref.startswith(f"{VENDOR}/"), ref
                assert http.get(ref).status_code == 200, ref
            assert "default-src 'self'" in page.headers["content-security-policy"]


def test_swagger_ui_and_redoc_render_the_document_with_no_internet(
    start_service: Callable[..., Service],
) -> None:
    if not Path(CHROMIUM).exists():
        if REQUIRE:
            pytest.fail("chromium is not installed (apt-get install chromium chromium-driver)")
        pytest.skip("chromium is not installed")
    svc = start_service()
    outside: list[str] = []
    errors: list[str] = []

    def offline(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if urlparse(url).hostname in LOCAL:
            route.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            route.abort("internetdisconnected")  # type: ignore[attr-defined]

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context()
        context.route("**/*", offline)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        page.goto(svc.url + "/docs")
        ingest = page.locator(".opblock-post .opblock-summary-path[data-path='/agent-runs']")
        ingest.wait_for(timeout=30_000)
        assert "OAS 3.1" in page.locator(".information-container").inner_text()
        ingest.click()
        page.get_by_role("button", name="Try it out").wait_for()

        page.goto(svc.url + "/redoc")
        page.get_by_role("heading", name="Ingest Run").wait_for(timeout=30_000)
        assert page.locator("h1").first.inner_text().startswith("opslab")
        browser.close()
    assert outside == []
    # ReDoc shows Redocly's logo from its CDN whatever it is told: the page's CSP refuses it before it is
    # requested, and the page reads the same without it.
    assert [e for e in errors if "cdn.redoc.ly" not in e] == []


def test_with_a_token_the_pages_need_a_credential_and_their_assets_do_not(
    start_service: Callable[..., Service], tmp_path: Path
) -> None:
    svc = start_service(env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), OPSLAB_API_TOKEN=TOKEN))
    with httpx.Client(base_url=svc.url, timeout=30) as http:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
        for asset in (
            "swagger-ui/swagger-ui-bundle.js",
            "swagger-ui/swagger-ui.css",
            "redoc/redoc.standalone.js",
        ):
            assert http.get(f"/ui/static/vendor/{asset}").status_code == 200, asset
