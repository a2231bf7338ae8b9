"""The dashboard's sign-in is a signed session with an expiry, never the token, on SQLite and PostgreSQL:
it reads and drives the dashboard, not the API's writes; it expires; signing out ends it in the browser;
a forged, tampered or outdated cookie is a sign-in page; replicas sharing their tokens share sessions."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from opslab.api import ServerThread, create_app
from opslab.api.sessions import COOKIE, SessionSigner
from opslab.config import Settings

TOKEN, READER = "tok-session-write-4e8a1c", "tok-session-read-9b3f7d"


def _settings(tmp_path: Path, db_url: str, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": db_url,
        "api_token": TOKEN,
        "read_token": READER,
        "job_workers": 1,
    }
    return Settings(**{**base, **over})


@pytest.fixture
def service(tmp_path: Path, db_url: str) -> Iterator[tuple[str, Settings]]:
    settings = _settings(tmp_path, db_url)
    with ServerThread(create_app(settings)) as server:
        yield server.url, settings


@contextmanager
def _sign_in(url: str, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/ui/login", data={"token": token, "next": "/ui/runs"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        yield client


def test_the_cookie_is_a_signed_expiring_session_not_the_token(service: tuple[str, Settings]) -> None:
    url, _ = service
    with _sign_in(url, TOKEN) as c:
        cookie = c.cookies[COOKIE]
        header = c.post("/ui/login", data={"token": TOKEN, "next": "/ui"}, follow_redirects=False).headers[
            "set-cookie"
        ]
        assert (
            TOKEN not in header
            and TOKEN not in base64.urlsafe_b64decode(cookie.split(".")[0] + "==").decode()
        )
        assert "Max-Age=43200" in header and "HttpOnly" in header and "SameSite=strict" in header
        assert c.get("/ui/runs").status_code == 200
        assert c.get("/agent-runs").status_code == 200  # a session reads the API too
        assert c.post("/agent-runs/run-x/rca-runs").status_code == 401  # but never writes it (no CSRF there)


def test_a_raw_token_forged_or_tampered_cookie_is_a_sign_in_page(service: tuple[str, Settings]) -> None:
    url, _ = service
    with _sign_in(url, READER) as reader:
        read_cookie = reader.cookies[COOKIE]
    payload, signature = read_cookie.rsplit(".", 1)
    as_writer = (
        base64.urlsafe_b64encode(base64.urlsafe_b64decode(payload + "==").replace(b'"read"', b'"write"'))
        .decode()
        .rstrip("=")
    )
    for forged in (TOKEN, READER, f"{as_writer}.{signature}", f"{payload}.{_tampered(signature)}", "x"):
        with httpx.Client(base_url=url, timeout=30, cookies={COOKIE: forged}) as c:
            r = c.get("/ui/runs", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/ui/login"), forged
            assert c.get("/agent-runs").status_code == 401, forged


def test_a_read_session_looks_and_may_not_act(service: tuple[str, Settings], run_001: dict[str, Any]) -> None:
    url, _ = service
    httpx.post(url + "/agent-runs", json=run_001, timeout=30).raise_for_status()
    with _sign_in(url, READER) as c:
        page = c.get(f"/ui/runs/{run_001['run_id']}")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', page.text)
        assert csrf
        acted = c.post(f"/ui/runs/{run_001['run_id']}/rca", data={"csrf": csrf.group(1)})
        assert acted.status_code == 401 and "read-only" in acted.text


def test_a_session_expires(tmp_path: Path, db_url: str) -> None:
    settings = _settings(tmp_path, db_url, ui_session_max_age_s=600)
    with ServerThread(create_app(settings)) as server:
        with _sign_in(server.url, TOKEN) as c:
            assert (
                "Max-Age=600"
                in c.post("/ui/login", data={"token": TOKEN}, follow_redirects=False).headers["set-cookie"]
            )
        # a session issued 601 s ago under the same key: as the browser would hold it after the wait
        issued_earlier = SessionSigner(settings, clock=lambda: time.time() - 601).issue("write")
        with httpx.Client(base_url=server.url, timeout=30, cookies={COOKIE: issued_earlier}) as c:
            r = c.get("/ui/runs?status=failure", follow_redirects=False)
            assert r.status_code == 303
            assert r.headers["location"] == "/ui/login?next=/ui/runs%3Fstatus%3Dfailure&expired=true"
            assert "Your session expired" in c.get(r.headers["location"]).text
            assert c.get("/agent-runs").status_code == 401
        fresh = SessionSigner(settings, clock=lambda: time.time() - 590).issue("write")
        with httpx.Client(base_url=server.url, timeout=30, cookies={COOKIE: fresh}) as c:
            assert c.get("/ui/runs").status_code == 200


def test_signing_out_clears_the_cookie(service: tuple[str, Settings]) -> None:
    url, _ = service
    with _sign_in(url, TOKEN) as c:
        page = c.get("/ui/runs").text
        csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', page)
        assert csrf and "Sign out" in page
        assert c.post("/ui/logout", data={"csrf": "0" * 32}, follow_redirects=False).status_code == 403
        out = c.post("/ui/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert f'{COOKIE}="";' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
        assert COOKIE not in c.cookies
        assert c.get("/ui/runs", follow_redirects=False).status_code == 303


def test_replicas_share_sessions_and_a_new_token_ends_them(tmp_path: Path, db_url: str) -> None:
    first, second = _settings(tmp_path, db_url), _settings(tmp_path, db_url)
    rotated = _settings(tmp_path, db_url, api_token="tok-session-rotated-2c6e0a")
    with (
        ServerThread(create_app(first)) as a,
        ServerThread(create_app(second)) as b,
        ServerThread(create_app(rotated)) as c,
    ):
        with _sign_in(a.url, TOKEN) as signed:
            cookie = signed.cookies[COOKIE]
        with httpx.Client(timeout=30, cookies={COOKIE: cookie}) as browser:
            assert browser.get(b.url + "/ui/runs").status_code == 200
            assert browser.get(c.url + "/ui/runs", follow_redirects=False).status_code == 303


def test_a_configured_session_secret_signs_instead(tmp_path: Path, db_url: str) -> None:
    settings = _settings(tmp_path, db_url, ui_session_secret="ui-session-key-0d7c5e9a1b")
    derived = _settings(tmp_path, db_url)
    with ServerThread(create_app(settings)) as server:
        with httpx.Client(
            base_url=server.url, timeout=30, cookies={COOKIE: SessionSigner(derived).issue("write")}
        ) as c:
            assert c.get("/ui/runs", follow_redirects=False).status_code == 303
        with _sign_in(server.url, TOKEN) as c:
            assert c.get("/ui/runs").status_code == 200


def _tampered(signature: str) -> str:
    """The signature with its first character changed (its last carries unused bits: changing it may leave
    the signature as it was; and a fixed replacement may equal the original)."""
    return ("B" if signature[0] == "A" else "A") + signature[1:]
