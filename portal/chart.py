"""The sync history's chart: items and errors of recent runs as bars, drawn on the server.

Pure geometry: points in, rectangles in SVG user units out; the template draws them. No
script and no chart library, so it shows the same with JavaScript off and prints well.

The time axis: one column per run, in the order they started, some of them labelled with
their start (the time, and the day where it changes). Runs come in bursts, so the columns are
not spaced by time: a burst of ten runs in a minute would be one unreadable pile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 640.0, 230.0
LEFT, TOP, BOTTOM = 44.0, 10.0, 40.0   # room for the scale's labels and the time axis's
# The room one start time needs under the columns ("12/07/2026", "10:45 a.m."): labels are
# at least this far apart, so at most six fit.
LABEL_WIDTH = 90.0
# Room right of the plot for half the newest column's label (centred under it).
RIGHT = LABEL_WIDTH / 2


@dataclass(frozen=True)
class Point:
    items: int
    errors: int
    title: str      # what a pointer over the column is told
    time: str = ""  # when the run started, as the axis writes it ("9:45")
    day: str = ""   # the day it started ("7. 12."): written where it changes


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Column:
    point: Point
    items: Bar
    errors: Bar


@dataclass(frozen=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True)
class TimeLabel:
    x: float        # the middle of the labelled column
    time: str
    day: str        # empty where the day is the previous label's


@dataclass(frozen=True)
class Chart:
    columns: list[Column]
    ticks: list[Tick]
    times: list[TimeLabel] = field(default_factory=list)
    width: float = WIDTH + RIGHT
    plot_right: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    baseline: float = HEIGHT - BOTTOM

    @property
    def label_x(self) -> float:
        """Where the scale's numbers end, just left of the plot."""
        return self.left - 6

    @property
    def time_y(self) -> float:
        """The time labels' first line, below the baseline."""
        return self.baseline + 14

    @property
    def day_y(self) -> float:
        return self.baseline + 28


def nice_ceiling(value: int) -> int:
    """The scale's top: `value` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power   # not reached: value <= 10 * power always


def bar_chart(points: Sequence[Point], slots: int = 0) -> Chart:
    """One column per point, in the given order (oldest first reads left to right).

    With `slots`, the chart has room for that many columns and the points fill it from the
    right: a few runs make narrow bars beside the scale's end, not a few wide slabs."""
    top = nice_ceiling(max((max(p.items, p.errors) for p in points), default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = HEIGHT - BOTTOM
    count = max(len(points), slots, 1)
    slot = (WIDTH - LEFT) / count
    bar_width = slot * 0.4
    first = count - len(points)

    def bar(x: float, value: int) -> Bar:
        height = plot_height * value / top
        return Bar(round(x, 2), round(baseline - height, 2), round(bar_width, 2),
                   round(height, 2))

    columns = [Column(point, bar(LEFT + i * slot + slot * 0.1, point.items),
                      bar(LEFT + i * slot + slot * 0.5, point.errors))
               for i, point in enumerate(points, start=first)]
    # A middle line only where it falls on a whole number (the scale's top is 1, 2 or 5 × 10ⁿ).
    fractions = (0, 0.5, 1) if top % 2 == 0 else (0, 1)
    ticks = [Tick(round(baseline - plot_height * fraction, 2), int(top * fraction))
             for fraction in fractions]
    return Chart(columns, ticks, time_labels(columns, slot))


def labelled(count: int, every: int) -> list[int]:
    """Which of `count` columns get a time: the newest (rightmost), then every `every`th
    to the left of it, so that no two labels overlap."""
    return sorted(range(count - 1, -1, -max(every, 1)))


def time_labels(columns: Sequence[Column], slot: float) -> list[TimeLabel]:
    labels: list[TimeLabel] = []
    day = ""
    for index in labelled(len(columns), math.ceil(LABEL_WIDTH / slot)):
        point = columns[index].point
        if not point.time:
            continue
        labels.append(TimeLabel(round(columns[index].items.x - slot * 0.1 + slot / 2, 2),
                                point.time, point.day if point.day != day else ""))
        day = point.day
    return labels
