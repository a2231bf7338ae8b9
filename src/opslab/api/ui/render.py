"""Rendering: one Jinja2 environment (autoescaped), the filters the pages share, and ``page()``.

Pages are server-rendered HTML that reads without JavaScript; htmx (vendored, never a CDN) swaps the
filtered lists in place and ``app.js`` follows a job's SSE stream. Every response carries a strict
Content-Security-Policy: scripts and styles from this service only, no other host.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from opslab import __version__
from opslab.api.ui import charts
from opslab.api.ui.auth import csrf_token, signed_in
from opslab.lab import format_interval, format_rate, format_value

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
NAV = (
    ("runs", "/ui/runs", "Runs"),
    ("experiments", "/ui/experiments", "Experiments"),
    ("canaries", "/ui/canaries", "Canaries"),
    ("incidents", "/ui/incidents", "Incidents"),
    ("builds", "/ui/builds", "Builds"),
)


def when(value: datetime | str | None) -> str:
    """UTC, to the second: ``2026-11-24 01:11:24``."""
    if value is None:
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return (
        f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    )


def pct(value: float | None, digits: int = 1) -> str:
    """A percentage already in 0-100."""
    return "—" if value is None else f"{value:.{digits}f} %"


def value(x: float | None, kind: str, signed: bool = False) -> str:
    """A lab metric (or a difference of it) as report.md and ``opslab lab compare`` show it."""
    return "—" if x is None else format_value(x, kind, signed)


def interval(ci: Sequence[float] | None, kind: str, signed: bool = False) -> str:
    return format_interval((ci[0], ci[1]) if ci else None, kind, signed)


def usd(value: float | None) -> str:
    """Dollars with the digits that matter: ``$12.30``, ``$0.0245``, ``$0.000027`` (never ``$0.0000`` for
    a cost that is not zero)."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.4f}"
    places = min(12, 1 - math.floor(math.log10(value)))  # two significant digits
    return f"${value:.{places}f}"


def pretty(value: Any) -> str:
    """JSON for a reader: indented, non-ASCII kept."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def costs(shares: list[Any]) -> list[tuple[str, float]]:
    return [(s.key, s.cost_usd) for s in shares]


def without(params: Any, *names: str) -> str:
    """A request's query string less ``names`` (pagination links keep the filters)."""
    return urlencode([(k, v) for k, v in params.multi_items() if k not in names and v != ""])


def window_rows(windows: list[Any]) -> list[tuple[str, str, float | None]]:
    """A canary's windows as (label, arm, p95) for ``charts.window_bars``: ``1A``, ``2B`` …"""
    return [(f"{w.index + 1}{w.arm}", w.arm, w.p95_ms) for w in windows]


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        ms=ms,
        pct=pct,
        rate=format_rate,
        value=value,
        interval=interval,
        usd=usd,
        pretty=pretty,
        costs=costs,
        without=without,
    )
    env.globals.update(
        nav=NAV,
        version=__version__,
        sparkline=charts.sparkline,
        bars=charts.bars,
        intervals=charts.intervals,
        window_bars=charts.window_bars,
        window_rows=window_rows,
    )
    return env


ENV = _env()


def page(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the request, the CSRF token for forms and ``context``."""
    html = ENV.get_template(template).render(
        request=request,
        csrf=csrf_token(request),
        signed_in=signed_in(request),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=security_headers())


def security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
