"""``create_app(settings)``: the one place the HTTP service is wired."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI

from opslab import __version__
from opslab.api.background import AutoOpsLoop, Periodic, ResponderService
from opslab.api.deps import add_body_schemas
from opslab.api.errors import ERROR_RESPONSES, install_error_handlers
from opslab.api.guard import AccessGuard
from opslab.api.middleware import ApiMetrics, BodyLimitMiddleware, MetricsMiddleware
from opslab.api.routes import agent, autoops, canary, lab, metrics, otlp, rca, root, telemetry
from opslab.api.sessions import SessionSigner
from opslab.api.ui.routes import install as install_ui
from opslab.config import Settings
from opslab.runtime import Runtime
from opslab.store import upgrade
from opslab.telemetry import PreparedRun


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or Settings.load()
    runtime = Runtime.build(settings)
    api_metrics = ApiMetrics()

    def count_ingested(runs: Sequence[PreparedRun]) -> None:
        for p in runs:
            api_metrics.ingested.labels(p.run.status, p.source).inc()

    runtime.ingest_observers.append(count_ingested)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await to_thread.run_sync(upgrade, runtime.engine)
        await to_thread.run_sync(runtime.backend.start)
        app.state.responder_service.start()
        # Targets of canaries that died mid-run (their hold lapsed) are put back by whichever process looks.
        recovery = Periodic("canary-recovery", settings.canary_lease_s / 3, runtime.recover_canaries)
        recovery.start()
        app.state.autoops_loop.start_service()
        try:
            yield
        finally:
            await to_thread.run_sync(recovery.stop)
            await to_thread.run_sync(app.state.autoops_loop.stop_service)
            await to_thread.run_sync(app.state.responder_service.stop)
            await to_thread.run_sync(runtime.backend.stop)
            runtime.close()

    app = FastAPI(
        title="opslab",
        version=__version__,
        description="The operations lab for AI agents and the services they run on.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.runtime = runtime
    app.state.metrics = api_metrics
    app.state.autoops_loop = AutoOpsLoop(runtime)
    app.state.responder_service = ResponderService(runtime, enabled=settings.responder_enabled)
    app.state.ui_sessions = signer = SessionSigner.for_settings(settings)
    runtime.metrics_registry = api_metrics.registry
    install_error_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_body_schemas(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # The last added runs first: metrics see every answer; the guard refuses before any body is read.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessGuard, settings=settings, signer=signer)
    app.add_middleware(MetricsMiddleware, metrics=api_metrics)
    # rca before telemetry: /agent-runs/rca-runs/{id} must not be taken for /agent-runs/{run_id}/…
    for module in (root, rca, telemetry, otlp, metrics, canary, lab, agent, autoops):
        app.include_router(module.router)
    install_ui(app)
    return app
