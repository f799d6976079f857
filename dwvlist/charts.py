"""Draw small charts as inline SVG on the server, readable without JavaScript.

Each chart is an <svg role="img"> with a <title> and a <desc> that states
the figures in words, so a screen reader gets the data, and every bar or
point carries its own <title> (a tooltip on hover). Colours come from the
stylesheet's custom properties so the charts follow dark mode.
"""

from __future__ import annotations

import hashlib
import math

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Distinct in light and dark mode; the first is the site's accent.
SERIES_COLOURS = ["var(--accent, #9b1c1c)", "#2a6fb0", "#1d8a4a", "#b7791f", "#7b4bb3", "#4a5568"]

_MARGIN_LEFT = 56
# Room for half of the last x label, centred on the plot's right edge.
_MARGIN_RIGHT = 30
_MARGIN_TOP = 30
_MARGIN_BOTTOM = 36
_LEGEND_ROW = 18
_MAX_X_LABELS = 12


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _nice_ceiling(value: float) -> tuple[float, float]:
    """Return (top, step): a round axis maximum at or above value and its tick step."""
    if value <= 0:
        return 1.0, 1.0
    rough = value / 4
    magnitude = 10 ** math.floor(math.log10(rough))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if step >= rough:
            break
    if step < 1 and value >= 1:
        step = 1.0
    top = math.ceil(value / step) * step
    return float(top), float(step)


def _open(*, title: str, desc: str, width: int, height: int, chart_id: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
        f'<text x="{_MARGIN_LEFT}" y="18" font-size="14" font-weight="600" fill="currentColor">{escape(title)}</text>',
    ]


def _empty(*, title: str, width: int, height: int, chart_id: str) -> SafeString:
    parts = _open(title=title, desc="No data yet.", width=width, height=height, chart_id=chart_id)
    parts.append(
        f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" font-size="13" '
        f'fill="currentColor">No data yet.</text>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)


def _axes(*, top: float, step: float, plot: tuple[float, float, float, float]) -> list[str]:
    """Return the y grid lines with their labels, and the x axis line."""
    left, plot_top, right, bottom = plot
    parts = []
    ticks = round(top / step)
    for i in range(ticks + 1):
        value = i * step
        y = bottom - (bottom - plot_top) * (value / top)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="currentColor" '
            f'stroke-opacity="0.15" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="currentColor">{_number(value)}</text>'
        )
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="currentColor" stroke-width="1"/>')
    return parts


def _x_labels(*, labels: list[str], xs: list[float], bottom: float) -> list[str]:
    every = max(1, math.ceil(len(labels) / _MAX_X_LABELS))
    parts = []
    for index, (label, x) in enumerate(zip(labels, xs, strict=True)):
        if index % every and index != len(labels) - 1:
            continue
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" font-size="12" '
            f'fill="currentColor">{escape(label)}</text>'
        )
    return parts


def _chart_id(title: str, salt: str) -> str:
    # Stable per content, so two charts on one page get different ids and
    # the same chart always renders the same.
    return "chart-" + hashlib.blake2s(f"{title}\x00{salt}".encode(), digest_size=5).hexdigest()


def chart_svg_bars(*, points: list[tuple[str, float]], title: str, width: int = 640, height: int = 240) -> SafeString:
    """Return an accessible inline SVG bar chart of (label, value) points."""
    chart_id = _chart_id(title, repr(points))
    if not points:
        return _empty(title=title, width=width, height=height, chart_id=chart_id)
    desc = "; ".join(f"{label}: {_number(value)}" for label, value in points)
    parts = _open(title=title, desc=desc, width=width, height=height, chart_id=chart_id)
    left, plot_top, right, bottom = _MARGIN_LEFT, _MARGIN_TOP, width - _MARGIN_RIGHT, height - _MARGIN_BOTTOM
    top, step = _nice_ceiling(max(max(value for _, value in points), 0))
    parts += _axes(top=top, step=step, plot=(left, plot_top, right, bottom))
    slot = (right - left) / len(points)
    bar_width = max(1.0, slot * 0.7)
    xs = []
    for index, (label, value) in enumerate(points):
        x = left + slot * index + (slot - bar_width) / 2
        bar_height = (bottom - plot_top) * (max(value, 0) / top)
        xs.append(x + bar_width / 2)
        parts.append(
            f'<rect x="{x:.1f}" y="{bottom - bar_height:.1f}" width="{bar_width:.1f}" height="{bar_height:.1f}" '
            f'fill="{SERIES_COLOURS[0]}"><title>{escape(label)}: {_number(value)}</title></rect>'
        )
    parts += _x_labels(labels=[label for label, _ in points], xs=xs, bottom=bottom)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)


def chart_svg_lines(
    *, series: dict[str, list[tuple[str, float]]], title: str, width: int = 640, height: int = 240
) -> SafeString:
    """Return an accessible inline SVG line chart, one line per named series.

    The x axis is the union of every series' labels in first-seen order; a
    series without a value at some label has a gap there.
    """
    chart_id = _chart_id(title, repr(series))
    labels: list[str] = []
    seen: set[str] = set()
    for points in series.values():
        for label, _ in points:
            if label not in seen:
                seen.add(label)
                labels.append(label)
    if not labels:
        return _empty(title=title, width=width, height=height, chart_id=chart_id)
    desc = ". ".join(
        f"{name}: " + ", ".join(f"{label} {_number(value)}" for label, value in points)
        for name, points in series.items()
    )
    parts = _open(title=title, desc=desc, width=width, height=height, chart_id=chart_id)
    legend_rows = math.ceil(len(series) / 3)
    left, plot_top = _MARGIN_LEFT, _MARGIN_TOP
    right, bottom = width - _MARGIN_RIGHT, height - _MARGIN_BOTTOM - legend_rows * _LEGEND_ROW
    values = [value for points in series.values() for _, value in points]
    top, step = _nice_ceiling(max(max(values, default=0), 0))
    parts += _axes(top=top, step=step, plot=(left, plot_top, right, bottom))
    if len(labels) == 1:
        xs = [(left + right) / 2]
    else:
        xs = [left + (right - left) * i / (len(labels) - 1) for i in range(len(labels))]
    x_of = dict(zip(labels, xs, strict=True))

    def y_of(value: float) -> float:
        return bottom - (bottom - plot_top) * (max(value, 0) / top)

    for index, (name, points) in enumerate(series.items()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        coords = " ".join(f"{x_of[label]:.1f},{y_of(value):.1f}" for label, value in points)
        parts.append(f'<g class="chart-series"><title>{escape(name)}</title>')
        if len(points) > 1:
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        # Markers only while they stay distinguishable.
        if len(points) <= 60:
            for label, value in points:
                parts.append(
                    f'<circle cx="{x_of[label]:.1f}" cy="{y_of(value):.1f}" r="3" fill="{colour}">'
                    f"<title>{escape(name)}, {escape(label)}: {_number(value)}</title></circle>"
                )
        parts.append("</g>")
    parts += _x_labels(labels=labels, xs=xs, bottom=bottom)
    for index, name in enumerate(series):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        row, column = divmod(index, 3)
        x = left + column * ((right - left) / 3)
        y = bottom + 32 + row * _LEGEND_ROW
        parts.append(f'<rect x="{x:.1f}" y="{y - 9}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 18:.1f}" y="{y + 1}" font-size="12" fill="currentColor">{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped above)
