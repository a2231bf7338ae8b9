"""Reading a target's own mini report (`GET /api/lab/report?mini=1`, the seed's integration): ΔP95, ΔQPS
and Err% from text lines (``ΔP95: -12.5%``, ``Error Rate: 0.50%``, ``Err%: 0.5``) or a JSON object with the
same names (``delta_p95_pct`` …). The three numbers must all be there; ``n/a`` means not measured.

A report that gives each arm's sample count (``Samples: 1200/1180``, ``Samples: A=1200, B=1180``, lines
``Samples A: 1200`` and ``Samples B: 1180``, JSON ``"samples": [1200, 1180]`` or ``{"A": …, "B": …}`` or
``samples_a`` / ``samples_b``) gets its AB imbalance (the smaller arm's shortfall from the larger,
``balance``) and sample-ratio-mismatch p-value computed from them, as for our own windows; otherwise the
report's own ``AB Imbalance`` line is kept, if it has one."""

from __future__ import annotations

import json
import re
from typing import Any

from opslab.canary.balance import imbalance_of
from opslab.canary.model import MiniReport
from opslab.errors import InvalidInput
from opslab.judge import sample_ratio_mismatch

NAMES = {
    "delta_p95_pct": ("deltap95", "dp95", "deltap95pct", "p95delta"),
    "delta_qps_pct": ("deltaqps", "dqps", "deltaqpspct", "qpsdelta"),
    "error_rate_pct": ("err%", "err", "errorrate", "errorratepct", "errors%", "errorrate%"),
    "ab_imbalance_pct": ("abimbalance", "abimbalancepct", "imbalance"),
}
_ALIASES = {alias: name for name, aliases in NAMES.items() for alias in aliases}
_LINE = re.compile(r"^\s*[-*•]?\s*(?P<key>[^:=]+?)\s*[:=]\s*(?P<rest>(?P<value>\S+).*?)\s*$")
PAIR_KEYS = ("samples", "samplecounts", "counts", "samplesab")
ARM_KEYS = {"samplesa": 0, "samplea": 0, "na": 0, "samplesb": 1, "sampleb": 1, "nb": 1}
_INT = re.compile(r"\d+")
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


def _pair(raw: Any) -> tuple[int, int] | None:
    """Two arms' sample counts from ``[a, b]``, ``{"A": a, "B": b}`` or text with exactly two integers."""
    if isinstance(raw, dict):
        arms = {str(k).strip().upper(): v for k, v in raw.items()}
        raw = [arms.get("A"), arms.get("B")]
    if isinstance(raw, list):
        ok = len(raw) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in raw)
        return (int(raw[0]), int(raw[1])) if ok else None
    numbers = _INT.findall(str(raw))
    return (int(numbers[0]), int(numbers[1])) if len(numbers) == 2 else None


def _count(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if raw >= 0 else None
    numbers = _INT.findall(str(raw))
    return int(numbers[0]) if len(numbers) == 1 else None


def _samples(items: list[tuple[str, Any]]) -> tuple[int, int] | None:
    arms: list[int | None] = [None, None]
    for key, raw in items:
        k = _key(key)
        if k in PAIR_KEYS and (pair := _pair(raw)) is not None:
            return pair
        if k in ARM_KEYS:
            arms[ARM_KEYS[k]] = _count(raw)
    return (arms[0], arms[1]) if arms[0] is not None and arms[1] is not None else None


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
        whole = items
    else:
        items, whole = [], []
        for line in stripped.splitlines():
            m = _LINE.match(line)
            if m:
                items.append((m.group("key"), m.group("value")))
                whole.append((m.group("key"), m.group("rest")))
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
    samples = _samples(whole)
    imbalance, srm_p = values.get("ab_imbalance_pct"), None
    if samples is not None and samples[0] + samples[1] > 0:
        srm = sample_ratio_mismatch(list(samples))
        imbalance, srm_p = imbalance_of(*samples).pct, srm.p_value
    return MiniReport(
        delta_p95_pct=values["delta_p95_pct"],
        delta_qps_pct=values["delta_qps_pct"],
        error_rate_pct=values["error_rate_pct"],
        ab_imbalance_pct=imbalance,
        samples=samples,
        srm_p=srm_p,
        other=other,
        text=text,
    )
