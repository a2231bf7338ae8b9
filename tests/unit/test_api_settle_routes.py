"""``settle_routes``: what FastAPI builds at an included router's first request is built at set-up, so the
service's first requests do not wait on it (``opslab serve`` calls it before it listens)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import routing
from fastapi.testclient import TestClient

from opslab.api import create_app, settle_routes
from opslab.config import Settings


def route_builds(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each route FastAPI builds for an included router from now on (skips where FastAPI builds them when
    they are included)."""
    context = getattr(routing, "_EffectiveRouteContext", None)
    if context is None:
        pytest.skip("this FastAPI builds included routes when they are included")
    built: list[object] = []
    made = context.from_api_route

    def counted(*args: object, **kwargs: object) -> object:
        built.append(kwargs.get("original_route", args[0] if args else None))
        return made(*args, **kwargs)

    monkeypatch.setattr(context, "from_api_route", counted)
    return built


def test_after_settling_no_request_builds_a_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"))
    assert settle_routes(app) > 50  # every route of every capability's routers
    built = route_builds(monkeypatch)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        client.post("/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"})
        assert client.get("/no/such/route").status_code == 404  # walks every router
    assert built == []


def test_unsettled_the_first_request_builds_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the counting above sees FastAPI build routes when nothing settled them."""
    app = create_app(Settings(data_dir=tmp_path / "data"))
    built = route_builds(monkeypatch)
    with TestClient(app) as client:
        assert client.get("/no/such/route").status_code == 404
    assert built
