"""OTLP/HTTP JSON exports written by hand, as the conventions' SDKs would send them (tests only)."""

from __future__ import annotations

import time
from typing import Any

T0 = int(time.time() * 1e9) - 60_000_000_000


def attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, v in values.items():
        if isinstance(v, bool):
            value: dict[str, Any] = {"boolValue": v}
        elif isinstance(v, int):
            value = {"intValue": str(v)}
        elif isinstance(v, float):
            value = {"doubleValue": v}
        elif isinstance(v, list):
            value = {"arrayValue": {"values": [{"stringValue": str(x)} for x in v]}}
        else:
            value = {"stringValue": str(v)}
        out.append({"key": key, "value": value})
    return out


def span(
    trace: str,
    sid: str,
    name: str,
    parent: str | None = None,
    *,
    start: int = 0,
    end: int = 1,
    error: str | None = None,
    **kv: Any,
) -> dict[str, Any]:
    """A span ``start``..``end`` tenths of a second after T0; ``a__b`` keyword names become ``a.b``."""
    s: dict[str, Any] = {
        "traceId": trace,
        "spanId": sid,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(T0 + start * 100_000_000),
        "endTimeUnixNano": str(T0 + end * 100_000_000),
        "attributes": attrs({k.replace("__", "."): v for k, v in kv.items()}),
        "status": {"code": 2, "message": error} if error else {"code": 1},
    }
    if parent:
        s["parentSpanId"] = parent
    if error:
        s["events"] = [
            {
                "name": "exception",
                "timeUnixNano": str(T0 + end * 100_000_000),
                "attributes": attrs({"exception.type": "TimeoutError", "exception.message": error}),
            }
        ]
    return s


def export(spans: list[dict[str, Any]], service: str = "app") -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attrs({"service.name": service})},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
            }
        ]
    }
