"""``install(app)``: the dashboard's routers and its static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from opslab.api.ui import builds, canaries, experiments, incidents, runs, session
from opslab.api.ui.render import STATIC


def install(app: FastAPI) -> None:
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    for module in (session, runs, experiments, canaries, incidents, builds):
        app.include_router(module.router)
