"""The overview's charts as data for inline SVG drawn by the template (no script, nothing fetched):
one bar per hour of the last 24, scaled to the tallest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.when import iso

WIDTH = 480
HEIGHT = 96
GAP = 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str  # the hour it counts (UTC)


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    peak: int
    total: int
    width: int = WIDTH
    height: int = HEIGHT


def bars(title: str, starts: Sequence[float], values: Sequence[int]) -> Chart:
    peak = max(values, default=0)
    slot = WIDTH / max(1, len(values))
    drawn = []
    for n, (start, value) in enumerate(zip(starts, values)):
        height = 0.0 if peak == 0 else max(1.0 if value else 0.0, (HEIGHT - 4) * value / peak)
        drawn.append(Bar(round(n * slot + GAP / 2, 1), round(HEIGHT - height, 1), round(slot - GAP, 1),
                         round(height, 1), value, (iso(start) or "")[:13].replace("T", " ") + ":00"))
    return Chart(title, drawn, peak, sum(values))
