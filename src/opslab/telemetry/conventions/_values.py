"""Attribute values as the readers take them: empty is absent, counts are non-negative, JSON is decoded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import from_json


def as_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 and value == value and value != float("inf") else None
    if isinstance(value, str):
        try:
            return as_float(float(value))
        except ValueError:
            return None
    return None


def parse_json_text(value: Any) -> Any:
    """A JSON-encoded attribute decoded (bounded nesting); the text itself when it is not JSON."""
    if not isinstance(value, str) or value[:1] not in ("{", "["):
        return value
    try:
        return from_json(value, allow_inf_nan=False)
    except ValueError:  # not JSON, or nested deeper than the parser allows
        return value


def as_tags(value: Any) -> list[str]:
    value = parse_json_text(value)
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list):
        return [str(t) for t in value if t not in (None, "")]
    return []


def first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def prefixed(attrs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: parse_json_text(v) for k, v in attrs.items() if k.startswith(prefix)}
