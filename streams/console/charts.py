"""Small SVG charts rendered on the server (no JavaScript library, no CDN: the console works offline).

Pure functions from numbers to SVG markup; every text they embed is XML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from streams.reports import percent as percent_text

PALETTE = ("#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700")
_W, _H = 640, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 14, 38


def _frame(title: str, body: str, legend: str = "") -> str:
    return (f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}{legend}</svg>')


def _nice_max(value: float, ticks: int = 4, *, whole: bool = True) -> float:
    """A round top for a y axis of ``ticks`` equal steps of 1, 2 or 5 × 10^k (at least 1 when ``whole``:
    counts get whole-number ticks)."""
    if value <= 0:
        return float(ticks)
    raw = value / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude)
    return float(max(step, 1) * ticks if whole else step * ticks)


def _x_labels(labels: Sequence[str], x_of: list[float]) -> str:
    every = max(1, len(labels) // 10)  # at most ~10 labels, or they overlap
    return "".join(f'<text x="{x:.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle" class="tick">{escape(lb)}</text>'
                   for i, (lb, x) in enumerate(zip(labels, x_of, strict=True)) if i % every == 0)


def _y_axis(top: float, percent: bool) -> str:
    out = []
    for i in range(5):
        v = top * i / 4
        y = _H - _BOTTOM - (_H - _TOP - _BOTTOM) * i / 4
        text = f"{v:.0%}" if percent else f"{v:g}"
        out.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{text}</text>')
    return "".join(out)


def bar_chart(points: Sequence[tuple[str, float]], *, title: str, unit: str = "") -> str:
    """One bar per (label, value); values are counts."""
    if not points:
        return _frame(title, f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" class="empty">暂无数据</text>')
    top = _nice_max(max(v for _, v in points))
    inner_w, inner_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = inner_w / len(points)
    bar = max(2.0, slot * 0.7)
    xs = [_LEFT + slot * (i + 0.5) for i in range(len(points))]
    bars = []
    for (label, value), x in zip(points, xs, strict=True):
        h = inner_h * value / top
        bars.append(f'<rect x="{x - bar / 2:.1f}" y="{_H - _BOTTOM - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{PALETTE[0]}"><title>{escape(label)}：{value:g}{escape(unit)}</title></rect>')
    return _frame(title, _y_axis(top, False) + "".join(bars) + _x_labels([p[0] for p in points], xs))


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, title: str,
               percent: bool = True) -> str:
    """Lines over shared x labels; ``None`` is a gap (no decided case that day). Percent: y from 0 to 100%."""
    if not labels or not series:
        return _frame(title, f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" class="empty">暂无数据</text>')
    values = [v for _, vs in series for v in vs if v is not None]
    top = 1.0 if percent else _nice_max(max(values, default=0.0), whole=False)
    inner_w, inner_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = inner_w / len(labels)
    xs = [_LEFT + slot * (i + 0.5) for i in range(len(labels))]
    body = [_y_axis(top, percent)]
    legend = []
    for n, (name, vs) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        segment: list[str] = []
        segments: list[list[str]] = [segment]
        for x, v, label in zip(xs, vs, labels, strict=True):
            if v is None:
                segment = []
                segments.append(segment)
                continue
            y = _H - _BOTTOM - inner_h * v / top
            segment.append(f"{x:.1f},{y:.1f}")
            shown = percent_text(v) if percent else f"{v:g}"
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{escape(name)} '
                        f'{escape(label)}：{shown}</title></circle>')
        body.extend(f'<polyline points="{" ".join(s)}" fill="none" stroke="{color}" stroke-width="2"/>'
                    for s in segments if len(s) > 1)
        lx = _LEFT + 8 + n * 150
        legend.append(f'<rect x="{lx}" y="{_H - 14}" width="10" height="10" fill="{color}"/>'
                      f'<text x="{lx + 14}" y="{_H - 5}" class="legend">{escape(name)}</text>')
    return _frame(title, "".join(body) + _x_labels(labels, xs), "".join(legend))
