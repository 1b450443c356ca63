"""Charts as server-rendered SVG: no script, no inline style (the CSP forbids both).

Each chart is an `<svg role="img">` named by its `<title>` and described by its `<desc>`; the
numbers it draws are also on the page as a table, for screen readers and for copying.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, BAR_AREA, ROW = 640, 420, 26
_ids = itertools.count(1)


def _fmt(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"


def bar_chart(title: str, description: str, labels: Sequence[str], values: Sequence[float | None],
              halfwidths: Sequence[float | None] = ()) -> Markup:
    """Horizontal bars, one per label, with the (1 - alpha) interval drawn as a whisker."""
    chart_id = f"chart-{next(_ids)}"
    widths = list(halfwidths) + [None] * (len(values) - len(halfwidths))
    points = [(lab, v, w) for lab, v, w in zip(labels, values, widths, strict=False) if v is not None]
    low = min([0.0] + [v - (w or 0) for _l, v, w in points])
    high = max([1e-9] + [v + (w or 0) for _l, v, w in points])
    left, top = WIDTH - BAR_AREA - 20, 10
    height = top + ROW * max(len(points), 1) + 30

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * BAR_AREA

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
             f'aria-labelledby="{chart_id}-t {chart_id}-d"><title id="{chart_id}-t">{escape(title)}</title>'
             f'<desc id="{chart_id}-d">{escape(description)}</desc>']
    zero = x(0.0)
    parts.append(f'<line class="axis" x1="{zero:.1f}" y1="{top - 4}" x2="{zero:.1f}" y2="{height - 24}"/>')
    for n, (label, value, half) in enumerate(points):
        y = top + n * ROW
        start, end = sorted((zero, x(value)))
        parts.append(f'<text class="label" x="{left - 6}" y="{y + 16}" text-anchor="end">{escape(label)}</text>')
        width = max(end - start, 1)
        parts.append(f'<rect class="bar" x="{start:.1f}" y="{y + 3}" width="{width:.1f}" height="{ROW - 8}">'
                     f'<title>{escape(label)}: {_fmt(value)}</title></rect>')
        if half:
            lo, hi, mid = x(value - half), x(value + half), y + ROW / 2 - 1
            parts.append(f'<g class="interval"><line x1="{lo:.1f}" y1="{mid:.1f}" x2="{hi:.1f}" y2="{mid:.1f}"/>'
                         f'<line x1="{lo:.1f}" y1="{mid - 6:.1f}" x2="{lo:.1f}" y2="{mid + 6:.1f}"/>'
                         f'<line x1="{hi:.1f}" y1="{mid - 6:.1f}" x2="{hi:.1f}" y2="{mid + 6:.1f}"/></g>')
    parts.append(f'<text class="tick" x="{left}" y="{height - 8}">{_fmt(low)}</text>'
                 f'<text class="tick" x="{left + BAR_AREA}" y="{height - 8}" text-anchor="end">{_fmt(high)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def budget_chart(title: str, description: str, days: Sequence[str], spent: Sequence[float], limit: float) -> Markup:
    """Privacy budget spent through the month: a step line of the running total under its limit."""
    chart_id = f"chart-{next(_ids)}"
    left, top, plot_w, plot_h = 60, 12, WIDTH - 80, 140
    height = top + plot_h + 34
    top_value = max([limit, 1e-09, *list(spent)])
    n = max(len(days), 1)

    def x(i: float) -> float:
        return left + i / n * plot_w

    def y(value: float) -> float:
        return top + plot_h - value / top_value * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
             f'aria-labelledby="{chart_id}-t {chart_id}-d"><title id="{chart_id}-t">{escape(title)}</title>'
             f'<desc id="{chart_id}-d">{escape(description)}</desc>',
             f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>',
             f'<line class="limit" x1="{left}" y1="{y(limit):.1f}" x2="{left + plot_w}" y2="{y(limit):.1f}"/>',
             f'<text class="tick" x="{left - 6}" y="{y(limit) + 4:.1f}" text-anchor="end">{_fmt(limit)}</text>',
             f'<text class="tick" x="{left - 6}" y="{top + plot_h + 4}" text-anchor="end">0</text>']
    path, last = [f"M{x(0):.1f},{y(0):.1f}"], 0.0
    for i, value in enumerate(spent):
        path.append(f"L{x(i):.1f},{y(last):.1f} L{x(i):.1f},{y(value):.1f}")
        last = value
    path.append(f"L{x(n):.1f},{y(last):.1f}")
    parts.append(f'<path class="spent" d="{" ".join(path)}"/>')
    if days:
        parts.append(f'<text class="tick" x="{left}" y="{height - 6}">{escape(days[0])}</text>'
                     f'<text class="tick" x="{left + plot_w}" y="{height - 6}" text-anchor="end">'
                     f'{escape(days[-1])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
