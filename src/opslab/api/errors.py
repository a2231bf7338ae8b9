"""The one mapping from the exception tree to HTTP: ``{"error": {"code", "message", "details"}}`` (a
dashboard page under ``/ui`` gets the same error as a page)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from opslab.api.ui.auth import is_ui
from opslab.api.ui.session import error_page
from opslab.errors import InvalidInput, OpslabError, Unavailable, from_wire, invalid_from_pydantic
from opslab.jobs import ErrorBody

log = logging.getLogger("opslab.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "payload_too_large"}


class ErrorEnvelope(BaseModel):
    """Every error the service answers: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody


# Documented on every operation: the answers the one exception handler may give anywhere.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in (
        (400, "A malformed request (e.g. a Content-Length that is not a number)."),
        (401, "Unauthorized: a token or the ingest secret is missing or wrong."),
        (403, "Refused by policy (e.g. a canary target that is not allowed)."),
        (404, "No such resource."),
        (405, "Method not allowed (the Allow header names the methods)."),
        (409, "Conflict (e.g. an Idempotency-Key reused for another request)."),
        (413, "The body is larger than the service accepts."),
        (422, "Invalid input: details.errors names every offending field."),
        (503, "A dependency (database, job queue) is unavailable; retry later."),
    )
}


RETRY_AFTER_S = 2


def error_response(
    status: int, code: str, message: str, details: dict[str, object] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": message, "details": details or {}}}
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's own 405 names only the first route's)."""
    matched = [r for r in _routes(request.app.router.routes) if r.matches(request.scope)[0] != Match.NONE]
    # A literal path (/agent-runs/batch) owns it over a template that would also match (/agent-runs/{id}).
    literal = [r for r in matched if "{" not in getattr(r, "path", "{")]
    methods: set[str] = set()
    for route in literal or matched:
        methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _routes(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    # Included routers (added without a prefix, as every router here is) hold their routes inside.
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def pool_exhausted() -> Unavailable:
    return Unavailable(
        "every database connection is busy; retry shortly", details={"reason": "connection pool exhausted"}
    )


def render_error(request: Request, exc: OpslabError) -> Response:
    """An error of the tree as the API's JSON envelope, or as a page under ``/ui``."""
    if is_ui(request.url.path):
        return error_page(request, exc)
    headers = (
        {"WWW-Authenticate": "Bearer"}
        if exc.http_status == 401
        else {"Retry-After": str(RETRY_AFTER_S)}
        if exc.http_status == 503
        else None
    )
    return JSONResponse(status_code=exc.http_status, content={"error": exc.to_dict()}, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OpslabError)
    async def _opslab(request: Request, exc: OpslabError) -> Response:
        return render_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            err = InvalidInput.for_field("body", "malformed JSON")
        else:
            err = invalid_from_pydantic(errors)
        if is_ui(request.url.path):
            return error_page(request, err)
        return JSONResponse(status_code=err.http_status, content={"error": err.to_dict()})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            err = InvalidInput.for_field("body", "malformed JSON")
            return JSONResponse(status_code=err.http_status, content={"error": err.to_dict()})
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        response: Response
        if is_ui(
            request.url.path
        ):  # no such page (or method): a page saying so, as for every dashboard error
            wire = from_wire(
                exc.status_code, {"error": {"code": code, "message": f"{exc.detail}: {request.url.path}"}}
            )
            response = error_page(request, wire, status_code=exc.status_code)
        else:
            response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    @app.exception_handler(OperationalError)
    async def _database(request: Request, exc: OperationalError) -> JSONResponse:
        # The database went away (restart, network, disk full): the transaction was rolled back, so
        # nothing is half-applied; the client may retry. Connections heal by themselves (pre-ping).
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        err = Unavailable(
            "the database is unavailable; retry shortly", details={"reason": str(exc.orig).strip()[:200]}
        )
        return JSONResponse(
            status_code=err.http_status,
            content={"error": err.to_dict()},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(ValidationError)
    async def _invalid(request: Request, exc: ValidationError) -> Response:
        # A model built from a path or query value inside a route (a session id, a filter): the input's fault.
        return render_error(request, invalid_from_pydantic(list(exc.errors(include_url=False))))

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> Response:
        log.warning("no database connection free for %s %s", request.method, request.url.path)
        return render_error(request, pool_exhausted())

    # Anything else reaches api.boundary.ErrorBoundary (a handler for Exception here would answer, then
    # re-raise to uvicorn, which drops the connection).
