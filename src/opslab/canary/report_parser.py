"""Reading a target's own mini report (`GET /api/lab/report?mini=1`, the seed's integration): ΔP95, ΔQPS
and Err% from text lines (``ΔP95: -12.5%``, ``Error Rate: 0.50%``, ``Err%: 0.5``) or a JSON object with the
same names (``delta_p95_pct`` …). The three numbers must all be there; ``n/a`` means not measured."""

from __future__ import annotations

import json
import re
from typing import Any

from opslab.canary.model import MiniReport
from opslab.errors import InvalidInput

NAMES = {
    "delta_p95_pct": ("deltap95", "dp95", "deltap95pct", "p95delta"),
    "delta_qps_pct": ("deltaqps", "dqps", "deltaqpspct", "qpsdelta"),
    "error_rate_pct": ("err%", "err", "errorrate", "errorratepct", "errors%", "errorrate%"),
    "ab_imbalance_pct": ("abimbalance", "abimbalancepct", "imbalance"),
}
_ALIASES = {alias: name for name, aliases in NAMES.items() for alias in aliases}
_LINE = re.compile(r"^\s*[-*•]?\s*(?P<key>[^:=]+?)\s*[:=]\s*(?P<value>\S+)")
_NUMBER = re.compile(r"^(?P<n>[+\-−]?\d+(?:\.\d+)?)\s*%?$")
REQUIRED = ("delta_p95_pct", "delta_qps_pct", "error_rate_pct")
LABELS = {"delta_p95_pct": "ΔP95", "delta_qps_pct": "ΔQPS", "error_rate_pct": "Err%"}


def _key(raw: str) -> str:
    k = raw.strip().lower().replace("δ", "delta")
    return re.sub(r"[\s_\-()]", "", k)


def _value(raw: Any, name: str) -> float | None:
    if isinstance(raw, bool):
        raise InvalidInput.for_field(f"report.{name}", f"expected a number, got {raw!r}")
    if isinstance(raw, int | float):
        return float(raw)
    text = str(raw).strip()
    if text.lower() in ("n/a", "na", "none", "null", "-"):
        return None
    m = _NUMBER.match(text)
    if not m:
        raise InvalidInput.for_field(f"report.{name}", f"expected a number like -12.5%, got {text!r}")
    return float(m.group("n").replace("−", "-"))


def parse_mini_report(text: str) -> MiniReport:
    values: dict[str, float | None] = {}
    other: dict[str, str] = {}
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise InvalidInput.for_field("report", f"not valid JSON: {exc}") from None
        items: list[tuple[str, Any]] = list(data.items()) if isinstance(data, dict) else []
    else:
        items = []
        for line in stripped.splitlines():
            m = _LINE.match(line)
            if m:
                items.append((m.group("key"), m.group("value")))
    for key, raw in items:
        name = _ALIASES.get(_key(key))
        if name is None:
            other[key.strip()] = str(raw)
        elif name not in values:
            values[name] = _value(raw, name)
    missing = [LABELS[n] for n in REQUIRED if n not in values]
    if missing:
        found = sorted(LABELS[n] for n in values if n in LABELS)
        raise InvalidInput.for_field(
            "report", f"the mini report has no {', '.join(missing)} (found: {found})"
        )
    return MiniReport(
        delta_p95_pct=values["delta_p95_pct"],
        delta_qps_pct=values["delta_qps_pct"],
        error_rate_pct=values["error_rate_pct"],
        ab_imbalance_pct=values.get("ab_imbalance_pct"),
        other=other,
        text=text,
    )
