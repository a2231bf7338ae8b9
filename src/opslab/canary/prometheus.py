"""ΔP95, the error rate, throughput and custom metrics read from Prometheus, one ABAB window at a time.

Each configured PromQL template is rendered for the window (``render_query``) and run as an instant query
at the window's end: ``GET {url}/api/v1/query?query=…&time={end}``. Templates aggregate over
``[{{range}}]``, the window's counted span, so the answer covers that window and nothing before it.

A query's answer must be one number: a vector of one sample, or a scalar. No data (an empty vector) and
NaN or ±Inf (``histogram_quantile`` over no requests, ``0/0``) read as ``None``, to be judged as missing.
Several series mean the template forgot to aggregate, and judging any one of them would be a guess, so
that is an error; so are an unreachable Prometheus and a query it refuses. Every error is
``opslab.errors.Unavailable`` naming the query.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, JsonValue

from opslab.canary.metrics_plan import PLACEHOLDER, CustomMetric, PrometheusSpec
from opslab.errors import Unavailable

Arm = Literal["A", "B"]
FIELDS = ("p95_ms", "error_rate_pct", "throughput_qps")


@dataclass(frozen=True)
class WindowSpan:
    """One window's times, in Unix seconds (Prometheus's clock is the wall clock, not a monotonic one)."""

    arm: Arm
    start: float  # when the window's load started
    counted_from: float  # from when the window counts (start + its warm-up share)
    end: float  # when it ended


class WindowMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: Arm
    start: float
    end: float
    p95_ms: float | None
    error_rate_pct: float | None
    throughput_qps: float | None
    custom: dict[str, float | None]
    queries: list[str]


def _seconds(t: float) -> str:
    return str(int(t)) if float(t).is_integer() else f"{t:.3f}"


def render_query(template: str, span: WindowSpan, selector: str) -> str:
    """``template`` for one window. ``{{start}}`` is where the window starts counting, so that
    ``{{end}} - {{start}}`` is ``{{range}}`` and the warm-up stays out of both."""
    values = {
        "range": f"{max(1, round(span.end - span.counted_from))}s",
        "start": _seconds(span.counted_from),
        "end": _seconds(span.end),
        "arm": span.arm,
        "selector": selector,
    }
    # The plan refused unknown placeholders when it was read; one still here stays as written.
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _without_secrets(url: str) -> str:
    # A resolved ${ENV} reference may have put a password or a token in the URL: keep it out of messages.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


class PrometheusSource:
    """Reads windows from one Prometheus. ``http``, ``sleep`` and ``now`` are seams for tests and for
    callers that bring their own client (auth headers, TLS); a client passed in is not closed here."""

    def __init__(
        self,
        spec: PrometheusSpec,
        *,
        url: str,
        custom: Sequence[CustomMetric] = (),
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.url = url.rstrip("/")
        self.custom = [m for m in custom if m.query is not None]
        self._owned = http is None
        self.http = http if http is not None else httpx.Client(timeout=spec.timeout_s)
        self.sleep, self.now = sleep, now

    def read_window(self, span: WindowSpan) -> WindowMetrics:
        # The window's last samples are only queryable once the scrape that took them has landed.
        remaining = span.end + self.spec.settle_sec - self.now()
        if remaining > 0:
            self.sleep(remaining)
        selector = self.spec.selector.get(span.arm, "")
        queries: list[str] = []

        def run(template: str | None) -> float | None:
            if template is None:
                return None
            promql = render_query(template, span, selector)
            queries.append(promql)
            return self._instant(promql, at=span.end)

        p95, errors, qps = (run(getattr(self.spec, name)) for name in FIELDS)
        custom = {m.name: run(m.query) for m in self.custom}
        return WindowMetrics(
            arm=span.arm,
            start=span.start,
            end=span.end,
            p95_ms=p95,
            error_rate_pct=errors,
            throughput_qps=qps,
            custom=custom,
            queries=queries,
        )

    def _instant(self, promql: str, *, at: float) -> float | None:
        where = f"Prometheus at {_without_secrets(self.url)}"
        try:
            r = self.http.get(
                f"{self.url}/api/v1/query",
                params={"query": promql, "time": _seconds(at)},
                timeout=self.spec.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"{where}: query {promql!r}: {exc}", details={"query": promql}) from exc
        try:
            body = r.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Unavailable(
                f"{where}: query {promql!r}: HTTP {r.status_code}, not Prometheus's JSON: {r.text[:200]!r}",
                details={"query": promql},
            )
        if r.status_code != 200 or body.get("status") != "success":
            error = body.get("error") or f"HTTP {r.status_code}"
            raise Unavailable(
                f"{where}: query {promql!r} failed: {error}",
                details={"query": promql, "error": str(error), "error_type": str(body.get("errorType"))},
            )
        return _one_number(body.get("data"), promql, where)

    def close(self) -> None:
        if self._owned:
            self.http.close()


def _one_number(data: JsonValue, promql: str, where: str) -> float | None:
    def refuse(why: str) -> Unavailable:
        return Unavailable(f"{where}: query {promql!r} {why}", details={"query": promql})

    if not isinstance(data, dict):
        raise refuse("answered without data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result, refuse)
    if kind != "vector" or not isinstance(result, list):
        raise refuse(f"returned a {kind}, not one number per window (an instant vector or a scalar)")
    if not result:
        return None
    if len(result) > 1:
        raise refuse(
            f"returned {len(result)} series; a window needs one number, so aggregate them (e.g. sum(...))"
        )
    sample = result[0]
    return _number(sample.get("value") if isinstance(sample, dict) else None, refuse)


def _number(pair: JsonValue, refuse: Callable[[str], Unavailable]) -> float | None:
    """A sample ``[time, "value"]``; NaN and ±Inf (no requests in the window, a division by zero) are no
    data, not numbers to judge."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise refuse(f"returned a malformed sample {pair!r:.80}")
    try:
        value = float(pair[1])
    except ValueError:
        raise refuse(f"returned a value that is not a number: {pair[1]!r:.80}") from None
    return value if math.isfinite(value) else None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _one_arm(windows: list[WindowMetrics]) -> None:
    arms = {w.arm for w in windows}
    if len(arms) > 1:
        raise ValueError("aggregate one arm's windows at a time, not A's and B's together")


def aggregate_arm(windows: list[WindowMetrics], field: str) -> float | None:
    """The mean of ``field`` (``p95_ms``, ``error_rate_pct`` or ``throughput_qps``) over one arm's windows
    that have it; None when none has."""
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}; use one of {', '.join(FIELDS)}")
    _one_arm(windows)
    return _mean([getattr(w, field) for w in windows])


def aggregate_custom(windows: list[WindowMetrics], name: str) -> float | None:
    """The mean of custom metric ``name`` over one arm's windows that have it; None when none has."""
    _one_arm(windows)
    return _mean([w.custom.get(name) for w in windows])
