"""What every sandbox service shares: one error body (``{"error": {"code", "message", "details"}}``, as
the opslab API answers), one health route (``GET /healthz``), and one way to run it under uvicorn.

A sandbox service raises ``opslab.errors`` exceptions (``InvalidInput.for_field`` naming the field,
``Conflict``, ``NotFound`` …); FastAPI's own body validation is mapped to the same 422 naming the field.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import JsonValue
from starlette.exceptions import HTTPException as StarletteHTTPException

from opslab.errors import InvalidInput, OpslabError, PolicyViolation, Unauthorized, invalid_from_pydantic
from opslab.sandbox.guard import BodyLimit, check_bind

log = logging.getLogger("opslab.sandbox")
TOKEN_HEADER = "X-Sandbox-Token"
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    status: int, code: str, message: str, details: dict[str, JsonValue] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": message, "details": details or {}}}
    )


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(name: str, *, lifespan: Lifespan | None = None) -> FastAPI:
    """A FastAPI app for the sandbox service ``name`` with the shared error body, ``GET /healthz`` and a
    64 KiB cap on request bodies (413)."""
    app = FastAPI(title=f"opslab sandbox {name}", lifespan=lifespan)
    app.add_middleware(BodyLimit)

    @app.exception_handler(OpslabError)
    async def _opslab(_: Request, exc: OpslabError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content={"error": exc.to_dict()})

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            err = InvalidInput.for_field("body", "malformed JSON")
        else:
            err = invalid_from_pydantic(errors)
        return JSONResponse(status_code=err.http_status, content={"error": err.to_dict()})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            err = InvalidInput.for_field("body", "malformed JSON")
            return JSONResponse(status_code=err.http_status, content={"error": err.to_dict()})
        return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "operation_failed", "internal error; see the service log")

    @app.get("/healthz")
    def healthz() -> dict[str, JsonValue]:
        """The service is up (its dependencies are its own business: see its own routes), and which process
        answers: a supervisor tells its own child from another server holding the port."""
        return {"ok": True, "service": name, "pid": os.getpid()}

    return app


def admin_guard(token: str | None) -> params.Depends:
    """A route dependency for the admin routes: 401 without ``X-Sandbox-Token``, 403 with a wrong one (and
    always 403 when the service was started without a token: its admin routes are then closed)."""

    def check(x_sandbox_token: Annotated[str | None, Header()] = None) -> None:
        if not x_sandbox_token:
            raise Unauthorized(f"the admin routes need the {TOKEN_HEADER} header")
        if token is None or not secrets.compare_digest(x_sandbox_token.encode(), token.encode()):
            raise PolicyViolation(f"wrong {TOKEN_HEADER}")

    guard: params.Depends = Depends(check)
    return guard


def run_app(app: FastAPI, host: str, port: int, *, tokens: dict[str, str | None] | None = None) -> None:
    """Serve ``app`` in the foreground until interrupted; beyond loopback only when every server in
    ``tokens`` that takes orders has its token."""
    import uvicorn

    check_bind(host, tokens or {})

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
