"""Dependencies: the runtime, the services and JSON bodies (who may call what: ``api/guard.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request
from pydantic import BaseModel
from pydantic_core import from_json

from opslab.errors import InvalidInput
from opslab.runtime import Runtime
from opslab.telemetry import TelemetryService


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
