"""Dependencies: the runtime, the services and JSON bodies (who may call what: ``api/guard.py``)."""

from __future__ import annotations

import zlib
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel
from pydantic_core import from_json

from opslab.errors import InvalidInput, PayloadTooLarge
from opslab.runtime import Runtime
from opslab.telemetry import TelemetryService

H = TypeVar("H")


def is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


# The dependencies below are ``async`` although nothing in them waits: FastAPI runs a plain ``def``
# dependency on a worker thread, a hand-off to a thread and back on every request (three of them made an
# OTLP export of one span ~1 ms slower end to end).
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def service_handle(request: Request, name: str, kind: type[H]) -> H:
    """What a capability's routes use of its long-lived loop (``opslab.capabilities``: ``services``)."""
    services: dict[str, Any] = request.app.state.services
    handle = getattr(services.get(name), "handle", None)
    if not isinstance(handle, kind):
        raise TypeError(f"the service {name!r} is not running here as a {kind.__name__}")
    return handle


async def get_telemetry(runtime: RuntimeDep) -> TelemetryService:
    return runtime.telemetry


TelemetryDep = Annotated[TelemetryService, Depends(get_telemetry)]


async def read_body(request: Request) -> bytes:
    """The request body, decompressed per ``Content-Encoding`` (gzip, deflate or none). The size cap
    (``OPSLAB_MAX_BODY_BYTES``) applies to the decompressed body too: a small bomb is a 413."""
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    limit: int = request.app.state.runtime.settings.max_body_bytes
    if encoding in ("gzip", "x-gzip"):
        return _inflate(raw, zlib.MAX_WBITS | 16, limit, "gzip")
    if encoding == "deflate":  # zlib-wrapped as the RFC says; raw deflate as some clients send it
        try:
            return _inflate(raw, zlib.MAX_WBITS, limit, "deflate")
        except InvalidInput as exc:
            if isinstance(exc, PayloadTooLarge):
                raise
            return _inflate(raw, -zlib.MAX_WBITS, limit, "deflate")
    raise InvalidInput.for_field(
        "Content-Encoding", f"{encoding!r} is not supported; send gzip, deflate or an uncompressed body"
    )


def _inflate(raw: bytes, wbits: int, limit: int, name: str) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise InvalidInput.for_field("body", f"not valid {name} data: {exc}") from None
    if len(out) > limit:
        raise PayloadTooLarge(
            f"body: larger than {limit} bytes once decompressed", details={"limit_bytes": limit}
        )
    if not inflater.eof:
        raise InvalidInput.for_field("body", f"truncated {name} data")
    return out


async def read_json(request: Request) -> Any:
    raw = await read_body(request)
    if not raw.strip():
        raise InvalidInput.for_field("body", "empty body; expected JSON")
    try:
        return from_json(raw)
    except ValueError as exc:
        raise InvalidInput.for_field("body", f"malformed JSON: {exc}") from None


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not declare is a 422 naming it (a misspelt filter must not
    silently return everything)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown:
        hint = f"known: {', '.join(sorted(known))}" if known else "this route takes no query parameters"
        raise InvalidInput.for_fields(
            [{"field": f"query.{name}", "message": f"unknown query parameter ({hint})"} for name in unknown]
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


KnownQuery = Depends(reject_unknown_query)


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
