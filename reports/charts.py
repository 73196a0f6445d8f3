"""Geometry of the report's charts; the HTML template draws them as inline SVG.

Only numbers and the labels given are computed here: no markup, so the template's
autoescaping covers every label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from parcelguard.reports.model import ArticleKind, ArticleSection, TrendPoint

# Colours of the compliance tones (the report's --good, --warn and --bad).
TONES = {"good": "#1b7f3b", "warn": "#b26a00", "bad": "#b3261e", "none": "#d0d4d9"}
BAR_HEIGHT = 18
BAR_GAP = 6
LABEL_WIDTH = 70
PLOT_WIDTH = 420
VALUE_WIDTH = 60


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # percent; None when nothing was judged
    x: int
    y: int
    width: float
    tone: str  # "good", "warn" or "bad": a CSS class


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    plot_x: int
    plot_width: int
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    top: int
    bottom: int
    left: int
    right: int
    points: tuple[tuple[float, float, str, float], ...]  # x, y, scan label, percent
    polyline: str  # "x,y x,y ..."
    gridlines: tuple[tuple[float, int], ...]  # y, percent


def tone(percent: float | None) -> str:
    if percent is None:
        return "none"
    if percent >= 90:
        return "good"
    return "warn" if percent >= 60 else "bad"


def article_bars(articles: Sequence[ArticleSection], label: str) -> BarChart:
    """Horizontal bars: the compliance of each technical article, in article order.

    ``label`` is a format string with ``{n}`` for the article number (e.g. ``Art. {n}``).
    """
    technical = [a for a in articles if a.kind is ArticleKind.TECHNICAL]
    bars = []
    for i, a in enumerate(technical):
        pct = a.compliance.percent
        bars.append(
            Bar(
                label=label.format(n=a.number),
                value=pct,
                x=LABEL_WIDTH,
                y=i * (BAR_HEIGHT + BAR_GAP) + BAR_GAP,
                width=round(PLOT_WIDTH * (pct or 0) / 100, 1),
                tone=tone(pct),
            )
        )
    height = len(bars) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    return BarChart(
        width=LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH,
        height=height,
        plot_x=LABEL_WIDTH,
        plot_width=PLOT_WIDTH,
        bars=tuple(bars),
    )


def trend_line(points: Sequence[TrendPoint], width: int = 550, height: int = 200) -> TrendChart:
    """A line of compliance per scan, oldest left; one point is drawn centred."""
    left, right, top, bottom = 45, width - 15, 15, height - 35
    span = max(len(points) - 1, 1)
    coords = []
    for i, p in enumerate(points):
        pct = p.compliance.percent or 0.0
        x = left + (right - left) * (i / span if len(points) > 1 else 0.5)
        y = bottom - (bottom - top) * pct / 100
        coords.append((round(x, 1), round(y, 1), p.started.strftime("%m-%d %H:%M"), round(pct, 1)))
    return TrendChart(
        width=width,
        height=height,
        top=top,
        bottom=bottom,
        left=left,
        right=right,
        points=tuple(coords),
        polyline=" ".join(f"{x},{y}" for x, y, _l, _p in coords),
        gridlines=tuple((bottom - (bottom - top) * v / 100, v) for v in (0, 25, 50, 75, 100)),
    )
