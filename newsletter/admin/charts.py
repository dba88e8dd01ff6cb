"""A cumulative line chart as inline SVG, drawn on the server: no chart library, no script.

Lines are styled by class (``series-sent`` ...) from ``admin.css``, since the
admin's CSP allows no inline styles; the chart carries a title and a text
description, and the page shows the same numbers as a table, so a screen
reader loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from itertools import accumulate

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 14, 36


@dataclass(frozen=True)
class Timeline:
    """Counts per time bucket for each series (bucket ``i`` starts at ``start + i * step``)."""

    start: datetime
    step: timedelta
    series: dict[str, list[int]]

    @property
    def buckets(self) -> int:
        return max((len(v) for v in self.series.values()), default=0)

    def rows(self) -> list[tuple[datetime, list[int]]]:
        """Non-empty buckets as (start, counts per series): the chart's data as a table."""
        columns = list(self.series.values())
        found = []
        for index in range(self.buckets):
            counts = [c[index] if index < len(c) else 0 for c in columns]
            if any(counts):
                found.append((self.start + self.step * index, counts))
        return found

    def cumulative(self) -> dict[str, list[int]]:
        return {name: list(accumulate(counts)) for name, counts in self.series.items()}


def nice_ceiling(value: float) -> int:
    """1, 2, 5, 10, 20, 25, 50, 100, ...: the smallest such number >= value."""
    step = 1
    while True:
        for factor in (1, 2, 2.5, 5) if step >= 10 else (1, 2, 5):
            if step * factor >= value:
                return int(step * factor)
        step *= 10


def axis_top(value: int) -> int:
    """An axis maximum whose four grid steps are round numbers (24 -> 40: 0, 10, 20, 30)."""
    return 4 * nice_ceiling(max(1, value) / 4)


def _x(index: int, buckets: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * index / max(1, buckets - 1) if buckets > 1 else span / 2)


def _y(value: int, top: int) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def _label(moment: datetime, step: timedelta, tz: tzinfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%H:%M}" if step < timedelta(hours=6) else f"{local:%b %d}"


def _axes(timeline: Timeline, top: int, tz: tzinfo) -> list[str]:
    parts = []
    for quarter in range(5):
        value = top * quarter // 4
        y = _y(value, top)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/>')  # fmt: skip
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{value}</text>')  # fmt: skip
    buckets = timeline.buckets
    for index in sorted({0, buckets // 3, (2 * buckets) // 3, buckets - 1}):
        label = _label(timeline.start + timeline.step * index, timeline.step, tz)
        parts.append(f'<text class="tick" x="{_x(index, buckets):.1f}" y="{HEIGHT - 12}" '
                     f'text-anchor="middle">{escape(label)}</text>')  # fmt: skip
    return parts


def _line(name: str, values: list[int], top: int) -> str:
    points = " ".join(f"{_x(i, len(values)):.1f},{_y(v, top):.1f}" for i, v in enumerate(values))
    if len(values) == 1:
        x, y = _x(0, 1), _y(values[0], top)
        return f'<circle class="series-{escape(name)}" cx="{x:.1f}" cy="{y:.1f}" r="4"/>'
    return f'<polyline class="series-{escape(name)}" points="{points}"/>'


def describe(timeline: Timeline) -> str:
    totals = ", ".join(f"{name} {sum(counts)}" for name, counts in timeline.series.items())
    return f"Cumulative recipients over time: {totals}."


def line_chart(timeline: Timeline, *, tz: tzinfo, title: str = "Activity over time") -> Markup:
    """The SVG element (safe to insert: every text in it is escaped here)."""
    lines = timeline.cumulative()
    top = axis_top(max([1, *(v[-1] for v in lines.values() if v)]))
    body = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(describe(timeline))}</desc>',
        *_axes(timeline, top, tz),
        *(_line(name, values, top) for name, values in lines.items() if values),
        "</svg>",
    ]
    return Markup("\n".join(body))
