"""Expanding a series (`RecurrenceRule`) into its occurrences, on the wall clock of its zone.

Exchange addresses an occurrence by its 1-based index in the series; the CRM keeps exceptions
by their original start. This module turns one into the other, and tells whether a series has
an occurrence inside a time window. Occurrences keep their local time across DST changes
(a weekly 09:00 Europe/Prague meeting is 08:00 UTC in winter and 07:00 UTC in summer).
"""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo
from collections.abc import Iterator

from engine.records import RecurrenceRule

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEK_INDEX = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
# A series with no end is expanded this far at most (Exchange's own views stop at two years).
HORIZON_DAYS = 3 * 366


def _weekdays(names: tuple[str, ...]) -> list[int]:
    out: set[int] = set()
    for name in names:
        if name == "Day":
            out.update(range(7))
        elif name == "Weekday":
            out.update(range(5))
        elif name == "WeekendDay":
            out.update((5, 6))
        elif name in DAYS:
            out.add(DAYS.index(name))
    return sorted(out)


def _nth(year: int, month: int, days: list[int], index: int) -> dt.date | None:
    last = calendar.monthrange(year, month)[1]
    matches = [dt.date(year, month, d) for d in range(1, last + 1)
               if dt.date(year, month, d).weekday() in days]
    if not matches:
        return None
    if index == -1:
        return matches[-1]
    return matches[index - 1] if index <= len(matches) else None


def _dates(rule: RecurrenceRule, start: dt.date) -> Iterator[dt.date]:
    interval = max(1, rule.interval)
    if rule.pattern == "daily":
        day = start
        while True:
            yield day
            day += dt.timedelta(days=interval)
    if rule.pattern == "weekly":
        days = _weekdays(rule.weekdays) or [start.weekday()]
        first = DAYS.index(rule.first_day_of_week) if rule.first_day_of_week in DAYS else 0
        week = start - dt.timedelta(days=(start.weekday() - first) % 7)
        while True:
            for offset in range(7):
                day = week + dt.timedelta(days=offset)
                if day.weekday() in days and day >= start:
                    yield day
            week += dt.timedelta(weeks=interval)
    yearly = rule.pattern.endswith("yearly")
    step = 12 if yearly else interval
    year, month = start.year, start.month
    if yearly and rule.month:
        month = rule.month
        if month < start.month:
            year += 1
    while True:
        if rule.pattern.startswith("absolute"):
            day_of_month = rule.day_of_month or start.day
            day: dt.date | None = dt.date(year, month,
                                          min(day_of_month, calendar.monthrange(year, month)[1]))
        else:
            day = _nth(year, month, _weekdays(rule.weekdays),
                       WEEK_INDEX.get(rule.week_index or "", 1))
        if day is not None and day >= start:
            yield day
        month += step
        while month > 12:
            month -= 12
            year += 1


def occurrences(rule: RecurrenceRule, first_start: dt.datetime, zone_name: str,
                until: dt.datetime | None = None) -> Iterator[tuple[int, dt.datetime]]:
    """(1-based index, start in UTC) of each occurrence, in order.

    `first_start` is the series' first start (aware); times repeat on the local wall clock of
    `zone_name`. Stops at the rule's end, its count, `until`, or the horizon.
    """
    zone = zoneinfo.ZoneInfo(zone_name) if zone_name else dt.UTC
    local_first = first_start.astimezone(zone)
    start_day = rule.start or local_first.date()
    horizon = (until or first_start + dt.timedelta(days=HORIZON_DAYS)).astimezone(dt.UTC)
    for index, day in enumerate(_dates(rule, start_day), start=1):
        if rule.end is not None and day > rule.end:
            return
        if rule.count is not None and index > rule.count:
            return
        start = dt.datetime.combine(day, local_first.timetz().replace(tzinfo=None), zone)
        start_utc = start.astimezone(dt.UTC)
        if start_utc > horizon:
            return
        yield index, start_utc


def index_of(rule: RecurrenceRule, first_start: dt.datetime, zone_name: str,
             original_start: dt.datetime) -> int | None:
    """The index Exchange gives the occurrence that originally started at `original_start`."""
    target = original_start.astimezone(dt.UTC)
    for index, start in occurrences(rule, first_start, zone_name, until=target):
        if start == target:
            return index
    return None


def last_start(rule: RecurrenceRule, first_start: dt.datetime, zone_name: str) -> dt.datetime:
    """The last occurrence's start (the horizon for a series without end)."""
    last = first_start.astimezone(dt.UTC)
    for _, start in occurrences(rule, first_start, zone_name):
        last = start
    return last


def overlaps(rule: RecurrenceRule, first_start: dt.datetime, duration: dt.timedelta,
             zone_name: str, window_start: dt.datetime, window_end: dt.datetime) -> bool:
    """Whether any occurrence of the series overlaps [window_start, window_end)."""
    for _, start in occurrences(rule, first_start, zone_name, until=window_end):
        if start < window_end and start + duration > window_start:
            return True
    return False
