"""Small charts drawn on the server as inline SVG: readable without JavaScript, no chart library, no
network. Each chart is an ``img`` with a text label that says what it shows (screen readers read that);
the numbers themselves are always in a table or a line of text beside it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

Number = float | int | None


def _svg(width: int, height: int, label: str, body: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )


def _finite(values: Sequence[Number]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def sparkline(values: Sequence[Number], *, label: str, width: int = 180, height: int = 36) -> Markup:
    """A line over ``values`` in order (gaps where a value is missing), its last point marked."""
    known = _finite(values)
    if not known:
        return _svg(width, height, f"{label}: no data", "")
    lo, hi = min(known), max(known)
    span = hi - lo or 1.0
    step = width / max(1, len(values) - 1)
    pad = 3
    points: list[str] = []
    paths: list[str] = []
    last: tuple[float, float] | None = None
    for i, v in enumerate(values):
        if v is None or not math.isfinite(float(v)):
            if points:
                paths.append(" ".join(points))
            points = []
            continue
        x = i * step if len(values) > 1 else width / 2
        y = pad + (height - 2 * pad) * (1 - (float(v) - lo) / span)
        points.append(f"{x:.1f},{y:.1f}")
        last = (x, y)
    if points:
        paths.append(" ".join(points))
    body = "".join(f'<polyline class="spark" points="{p}"/>' for p in paths)
    if last:
        body += f'<circle class="spark-dot" cx="{last[0]:.1f}" cy="{last[1]:.1f}" r="2.5"/>'
    return _svg(width, height, f"{label}: from {known[0]:.4g} to {known[-1]:.4g}", body)


LABEL_MAX_CHARS, CHAR_PX = 40, 7  # the widest bar label, and the width a character takes (11 px text)


def bars(items: Sequence[tuple[str, float]], *, label: str, width: int = 260, unit: str = "") -> Markup:
    """Horizontal bars, one per (name, value), longest first as given."""
    row = 18
    height = row * max(1, len(items))
    top = max((v for _, v in items), default=0.0) or 1.0
    # The label column fits the longest name (a model's full name: gpt-4o-2024-08-06), up to a limit past
    # which a name ends in "…"; each bar carries its full name as a tooltip (<title>).
    longest = max((len(name) for name, _ in items), default=0)
    column = min(LABEL_MAX_CHARS, max(16, longest)) * CHAR_PX
    width = max(width, column + 150)
    body = ""
    for i, (name, value) in enumerate(items):
        w = max(1.0, (width - column - 4) * value / top)
        y = i * row
        shown = name if len(name) <= LABEL_MAX_CHARS else name[: LABEL_MAX_CHARS - 1] + "…"
        body += (
            f"<g><title>{escape(name)}: {value:.4g}{escape(unit)}</title>"
            f'<text class="bar-label" x="0" y="{y + 13}">{escape(shown)}</text>'
            f'<rect class="bar" x="{column + 4}" y="{y + 3}" width="{w:.1f}" height="{row - 6}"/></g>'
        )
    described = ", ".join(f"{n} {v:.4g}{unit}" for n, v in items) or "no data"
    return _svg(width, height, f"{label}: {described}", body)


def intervals(
    rows: Sequence[tuple[str, float | None, float | None, float | None]],
    *,
    label: str,
    reference: float | None = None,
    width: int = 420,
    percent: bool = True,
) -> Markup:
    """An interval plot: per row a point (the estimate) and a whisker (its interval), on one shared axis,
    with a reference line (0 for a difference, the baseline for a rate)."""
    row, left, right = 26, 120, 16
    height = row * max(1, len(rows)) + 18
    ends = _finite(
        [v for _, m, lo, hi in rows for v in (m, lo, hi)] + ([reference] if reference is not None else [])
    )
    if not ends:
        return _svg(width, height, f"{label}: no data", "")
    lo_axis, hi_axis = min(ends), max(ends)
    margin = (hi_axis - lo_axis) * 0.08 or 0.05
    lo_axis, hi_axis = lo_axis - margin, hi_axis + margin
    if percent:  # a rate lives in [0, 1], a difference of rates in [-1, 1]: no axis past them
        floor = 0.0 if reference is None else -1.0
        lo_axis, hi_axis = max(floor, lo_axis), min(1.0, hi_axis)

    def x(v: float) -> float:
        return left + (width - left - right) * (v - lo_axis) / (hi_axis - lo_axis)

    def fmt(v: float) -> str:
        return (
            f"{100 * v:+.1f}%" if percent and reference == 0 else f"{100 * v:.1f}%" if percent else f"{v:.3g}"
        )

    body = ""
    if reference is not None:
        body += (
            f'<line class="ref" x1="{x(reference):.1f}" x2="{x(reference):.1f}" y1="0" y2="{height - 18}"/>'
        )
    described = []
    for i, (name, mean, lo, hi) in enumerate(rows):
        y = i * row + row / 2
        body += f'<text class="bar-label" x="0" y="{y + 4:.1f}">{escape(name[:18])}</text>'
        if lo is not None and hi is not None:
            body += f'<line class="whisker" x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
        if mean is not None:
            body += f'<circle class="point" cx="{x(mean):.1f}" cy="{y:.1f}" r="4"/>'
            bounds = f" [{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else ""
            described.append(f"{name} {fmt(mean)}{bounds}")
    axis_y = height - 4
    body += (
        f'<text class="axis" x="{left}" y="{axis_y}">{fmt(lo_axis)}</text>'
        f'<text class="axis" x="{width - right}" y="{axis_y}" text-anchor="end">{fmt(hi_axis)}</text>'
    )
    return _svg(width, height, f"{label}: " + "; ".join(described), body)


def window_bars(windows: Sequence[tuple[str, str, float | None]], *, label: str, width: int = 420) -> Markup:
    """One bar per window (label, arm A or B, value), in the order they ran; arms told apart by pattern
    and by their label, not by colour alone."""
    height, bottom = 120, 18
    known = _finite([v for _, _, v in windows])
    top = max(known, default=0.0) or 1.0
    slot = width / max(1, len(windows))
    body = ""
    for i, (name, arm, value) in enumerate(windows):
        x = i * slot + slot * 0.15
        if value is not None:
            h = (height - bottom - 12) * value / top
            y = height - bottom - h
            body += (
                f'<rect class="win win-{escape(arm.lower())}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{h:.1f}"/>'
                f'<text class="axis" x="{x + slot * 0.35:.1f}" y="{y - 2:.1f}" text-anchor="middle">'
                f"{value:.0f}</text>"
            )
        body += (
            f'<text class="axis" x="{x + slot * 0.35:.1f}" y="{height - 4}" text-anchor="middle">'
            f"{escape(name)}</text>"
        )
    described = ", ".join(f"{n} {v:.1f} ms" if v is not None else f"{n} n/a" for n, _, v in windows)
    return _svg(width, height, f"{label}: {described or 'no windows'}", body)
