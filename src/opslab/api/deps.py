"""Dependencies: the runtime, the services, JSON bodies and the two guards (ingest secret, API token)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pydantic import BaseModel
from pydantic_core import from_json

from opslab.errors import InvalidInput, Unauthorized
from opslab.runtime import Runtime
from opslab.telemetry import TelemetryService

# Ingestion is guarded by the ingest secret, not by the API token: agents in the field hold the former.
INGEST_PATHS = frozenset({"/agent-runs", "/agent-runs/batch", "/v1/traces"})
# Deliberately open whatever is configured: who the service is, and whether it is up.
OPEN_PATHS = frozenset({"/", "/healthz"})
# The dashboard's sign-in cookie, and what it serves to anyone: the sign-in page and its static files.
COOKIE = "opslab_ui"
OPEN_PREFIXES = ("/ui/login", "/ui/static/")


def is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_telemetry(runtime: RuntimeDep) -> TelemetryService:
    return runtime.telemetry


TelemetryDep = Annotated[TelemetryService, Depends(get_telemetry)]


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise InvalidInput.for_field("body", "empty body; expected JSON")
    try:
        return from_json(raw)
    except ValueError as exc:
        raise InvalidInput.for_field("body", f"malformed JSON: {exc}") from None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def require_ingest_secret(request: Request, runtime: RuntimeDep) -> None:
    secret = runtime.settings.ingest_secret
    if secret is not None and not _same(request.headers.get("x-ingest-secret"), secret.get_secret_value()):
        raise Unauthorized("X-Ingest-Secret: missing or wrong", details={"header": "X-Ingest-Secret"})


def require_api_token(request: Request) -> None:
    """App-wide: with ``OPSLAB_API_TOKEN`` set, every route needs the bearer token, except ingestion
    (guarded by the ingest secret), the service's identity and health, and — only with
    ``OPSLAB_PUBLIC_READS=true`` — reads. ``OPSLAB_READ_TOKEN`` is a second token good for reads only.
    The dashboard's sign-in cookie stands for the bearer token on reads and on the dashboard's own forms
    (which carry a CSRF token; see ``api/ui/auth.py``)."""
    settings = request.app.state.runtime.settings
    token = settings.api_token
    path, method = request.url.path, request.method
    if token is None or path in OPEN_PATHS or (method == "POST" and path in INGEST_PATHS):
        return
    if path.startswith(OPEN_PREFIXES):
        return
    reading, ui = method in ("GET", "HEAD", "OPTIONS"), is_ui(path)
    if reading and settings.public_reads and not ui:
        return  # a dashboard page looks for a sign-in first (below): a signed-in page's forms act
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    given = value.strip() if scheme.lower() == "bearer" else None
    if given is None and (reading or ui):
        given = request.cookies.get(COOKIE)
        request.state.ui_cookie = given is not None
    if _same(given, token.get_secret_value()):
        request.state.ui_token = given
        return
    if reading and settings.read_token is not None and _same(given, settings.read_token.get_secret_value()):
        request.state.ui_token = given
        request.state.ui_read_only = True
        return
    if reading and settings.public_reads:  # a dashboard page, open to read without a sign-in
        return
    raise Unauthorized("Authorization: a valid Bearer token is required", details={"header": "Authorization"})


IngestGuard = Depends(require_ingest_secret)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a request safely: the same key returns the job first created with it. "
        "1-200 visible ASCII characters; an empty key is refused (422).",
    ),
]

# Models documented in the OpenAPI components although their routes read raw JSON (for speed).
DOCUMENTED_BODIES: list[type[BaseModel]] = []


def body_schema(model: type[BaseModel], *, array: bool = False) -> dict[str, Any]:
    """OpenAPI request body for a route that reads raw JSON: a reference to ``model``'s schema, which
    ``create_app`` adds (with the models it uses) to the document's components."""
    if model not in DOCUMENTED_BODIES:
        DOCUMENTED_BODIES.append(model)
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    body = {"type": "array", "items": ref} if array else ref
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


def add_body_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Put every ``body_schema`` model (and the models it refers to) under ``components.schemas``."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in DOCUMENTED_BODIES:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault(model.__name__, schema)
    return document
