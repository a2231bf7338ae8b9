"""Dependencies: the runtime, the services, JSON bodies and the two guards (ingest secret, API token)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic_core import from_json

from opslab.errors import InvalidInput, Unauthorized
from opslab.runtime import Runtime
from opslab.telemetry import TelemetryService

# Ingestion is guarded by the ingest secret, not by the API token: agents in the field hold the former.
INGEST_PATHS = frozenset({"/agent-runs", "/agent-runs/batch", "/v1/traces"})


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
    """App-wide: with ``OPSLAB_API_TOKEN`` set, every non-GET route but ingestion needs the bearer token."""
    token = request.app.state.runtime.settings.api_token
    if token is None or request.method in ("GET", "HEAD", "OPTIONS") or request.url.path in INGEST_PATHS:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not _same(given.strip(), token.get_secret_value()):
        raise Unauthorized(
            "Authorization: a valid Bearer token is required", details={"header": "Authorization"}
        )


IngestGuard = Depends(require_ingest_secret)


def body_schema(model: Any, *, array: bool = False) -> dict[str, Any]:
    """OpenAPI request body for routes that read raw JSON (so docs still show the contract)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    body = {"type": "array", "items": schema} if array else schema
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "x-components": defs,
    }
