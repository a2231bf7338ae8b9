"""``create_app(settings)``: the one place the HTTP service is wired."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool

from opslab import __version__
from opslab.api.deps import require_api_token
from opslab.api.errors import install_error_handlers
from opslab.api.middleware import ApiMetrics, BodyLimitMiddleware, MetricsMiddleware
from opslab.api.routes import canary, metrics, rca, root, telemetry
from opslab.config import Settings
from opslab.runtime import Runtime
from opslab.store import upgrade
from opslab.telemetry import PreparedRun


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime.build(settings)
    api_metrics = ApiMetrics()

    def count_ingested(runs: Sequence[PreparedRun]) -> None:
        for p in runs:
            api_metrics.ingested.labels(p.run.status, p.source).inc()

    runtime.ingest_observers.append(count_ingested)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await run_in_threadpool(upgrade, runtime.engine)
        await run_in_threadpool(runtime.backend.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.backend.stop)
            runtime.close()

    app = FastAPI(
        title="opslab",
        version=__version__,
        description="The operations lab for AI agents and the services they run on.",
        lifespan=lifespan,
        dependencies=[Depends(require_api_token)],
    )
    app.state.runtime = runtime
    app.state.metrics = api_metrics
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=api_metrics)
    # rca before telemetry: /agent-runs/rca-runs/{id} must not be taken for /agent-runs/{run_id}/…
    for module in (root, rca, telemetry, metrics, canary):
        app.include_router(module.router)
    return app
