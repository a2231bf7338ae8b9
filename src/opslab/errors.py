"""One exception tree for the whole product.

    OpslabError                 code            HTTP  CLI exit
    ├── InvalidInput            invalid_input   422   2
    │   └── PayloadTooLarge     payload_too_large 413 2
    ├── Unauthorized            unauthorized    401   3
    ├── PolicyViolation         policy_violation 403  3
    ├── NotFound                not_found       404   4
    ├── Conflict                conflict        409   5
    ├── Unavailable             unavailable     503   6
    └── OperationFailed         operation_failed 500  1

Every error carries a machine-readable ``code``, a human ``message`` and ``details`` (for input
errors: the offending field paths). The API maps the tree to ``{"error": {...}}`` bodies in one
handler; the CLI maps it to exit codes in one place.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OpslabError(Exception):
    code: ClassVar[str] = "operation_failed"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(OpslabError):
    code = "invalid_input"
    http_status = 422
    exit_code = 2

    @classmethod
    def for_field(cls, field: str, message: str, **details: Any) -> InvalidInput:
        return cls(
            f"{field}: {message}", details={"errors": [{"field": field, "message": message}], **details}
        )

    @classmethod
    def for_fields(cls, fields: list[dict[str, str]], **details: Any) -> InvalidInput:
        """Every offending field (``{"field", "message"}``) in the details; the first in the message."""
        head = fields[0] if fields else {"field": "body", "message": "invalid"}
        more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
        return cls(f"{head['field']}: {head['message']}{more}", details={"errors": fields, **details})


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    http_status = 413


class Unauthorized(OpslabError):
    code = "unauthorized"
    http_status = 401
    exit_code = 3


class PolicyViolation(OpslabError):
    code = "policy_violation"
    http_status = 403
    exit_code = 3


class NotFound(OpslabError):
    code = "not_found"
    http_status = 404
    exit_code = 4


class Conflict(OpslabError):
    code = "conflict"
    http_status = 409
    exit_code = 5


class Unavailable(OpslabError):
    code = "unavailable"
    http_status = 503
    exit_code = 6


class OperationFailed(OpslabError):
    code = "operation_failed"


def format_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("steps", 0, "started_at")`` -> ``"steps[0].started_at"``; FastAPI's leading ``body`` is dropped."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item == "body" and not parts:
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "body"


def invalid_from_pydantic(errors: list[Any], *, loc_prefix: tuple[Any, ...] = ()) -> InvalidInput:
    """One ``InvalidInput`` naming every offending field of a pydantic validation error list."""
    fields = [
        {
            "field": format_loc((*loc_prefix, *err.get("loc", ()))),
            "message": str(err.get("msg", "invalid")).removeprefix("Value error, "),
        }
        for err in errors
    ]
    return InvalidInput.for_fields(fields)


def from_wire(status: int, body: object) -> OpslabError:
    """Rebuild the exception a service raised from its ``{"error": …}`` body (clients re-raise it)."""
    by_code = {
        cls.code: cls
        for cls in (
            InvalidInput,
            PayloadTooLarge,
            Unauthorized,
            PolicyViolation,
            NotFound,
            Conflict,
            Unavailable,
            OperationFailed,
        )
    }
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return OperationFailed(f"HTTP {status}: {str(body)[:300]}")
    cls = by_code.get(str(err.get("code")), OperationFailed)
    details = err.get("details")
    return cls(
        str(err.get("message") or f"HTTP {status}"), details=details if isinstance(details, dict) else {}
    )
