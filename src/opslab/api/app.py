"""``create_app(settings)``: the one place the HTTP service is wired."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from anyio import to_thread
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from opslab import __version__
from opslab.api.background import Service
from opslab.api.boundary import AccessLog, Admission, EdgeCheck, ErrorBoundary
from opslab.api.deps import add_body_schemas
from opslab.api.docs import router as docs_router
from opslab.api.errors import ERROR_RESPONSES, install_error_handlers
from opslab.api.guard import AccessGuard
from opslab.api.middleware import ApiMetrics, BodyLimitMiddleware, MetricsMiddleware
from opslab.api.sessions import SessionSigner
from opslab.api.ui.render import STATIC
from opslab.capabilities import CAPABILITIES, PLATFORM, load
from opslab.config import Settings
from opslab.runtime import Runtime
from opslab.store import upgrade
from opslab.telemetry import PreparedRun


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or Settings.load()
    runtime = Runtime.build(settings)
    runtime.works.load()  # the service runs every kind of work: made now, not on its first job
    api_metrics = ApiMetrics()

    def count_ingested(runs: Sequence[PreparedRun]) -> None:
        counts = Counter((p.status, p.source) for p in runs)  # one increment per label pair
        for (status, source), n in counts.items():
            api_metrics.ingested.labels(status, source).inc(n)

    runtime.ingest_observers.append(count_ingested)

    # The capabilities' long-lived loops (the responder, the autoops loop, canary recovery), declared in
    # opslab.capabilities, started in that order with the service and stopped in reverse.
    services = [_service_factory(ref)(runtime) for cap in (PLATFORM, *CAPABILITIES) for ref in cap.services]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start_ingest_sidecar()  # forked first, while this process runs one thread
        if migrate:
            await to_thread.run_sync(upgrade, runtime.engine)
        await to_thread.run_sync(runtime.backend.start)
        for service in services:
            service.start()
        try:
            yield
        finally:
            for service in reversed(services):
                await to_thread.run_sync(service.stop)
            await to_thread.run_sync(runtime.backend.stop)
            runtime.close()

    app = FastAPI(
        title="opslab",
        version=__version__,
        description="The operations lab for AI agents and the services they run on.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        docs_url=None,  # /docs and /redoc come from api.docs, with their assets served from here
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.metrics = api_metrics
    app.state.services = {service.name: service for service in services}
    app.state.ui_sessions = signer = SessionSigner.for_settings(settings)
    runtime.metrics_registry = api_metrics.registry
    install_error_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_body_schemas(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # The last added runs first (api.boundary): the access log and the error boundary see every answer;
    # admission refuses before a thread or a connection is held; the guard before any input is looked at.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(EdgeCheck)
    app.add_middleware(AccessGuard, settings=settings, signer=signer)
    app.add_middleware(Admission, max_in_flight=settings.max_in_flight)
    app.add_middleware(MetricsMiddleware, metrics=api_metrics)
    app.add_middleware(ErrorBoundary)
    app.add_middleware(AccessLog, enabled=settings.access_log)
    # Each capability's routers in its declared order, then its dashboard pages (opslab.capabilities).
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(docs_router)
    for cap in (PLATFORM, *CAPABILITIES):
        for ref in (*cap.api, *cap.ui):
            router = load(ref)
            if not isinstance(router, APIRouter):
                raise TypeError(f"{cap.name}: {ref} is not an APIRouter")
            app.include_router(router)
    return app


def settle_routes(app: FastAPI) -> int:
    """Build now what FastAPI builds at the first request that walks an included router (each route's
    parameter and body models): ~0.15 s of CPU the service's first requests would otherwise wait on (an
    OTLP export's first answer took twice its usual time). Returns how many routes it visited. FastAPI's
    included routers build on ``effective_candidates()`` and ``effective_low_priority_routes()``; a
    FastAPI without them is left to build lazily, as before."""
    pending: list[Any] = list(app.router.routes)
    visited = 0
    while pending:
        route = pending.pop()
        visited += 1
        for name in ("effective_candidates", "effective_low_priority_routes"):
            build = getattr(route, name, None)
            if callable(build):
                pending.extend(build())
    return visited


def _service_factory(ref: str) -> Callable[[Runtime], Service]:
    factory = load(ref)
    if not callable(factory):
        raise TypeError(f"{ref} is not a service factory")
    return cast(Callable[[Runtime], Service], factory)
