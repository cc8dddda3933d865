"""Expand recurring calendar masters into occurrences.

Occurrences are computed in the series' own time zone wall clock (StartTimeZone),
then converted to UTC: a 09:00 Europe/Prague meeting stays at 09:00 local across DST
(our research prototype got this wrong by one hour, notes §4.2).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree

from .ns import local, tq
from .store import Item
from .timeutil import UTC, parse_dt

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
INDEXES = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
MONTHS = list(calendar.month_name)
MAX_OCCURRENCES = 5000   # safety net for NoEndRecurrence


def _win_to_iana() -> dict[str, str]:
    try:   # exchangelib ships the CLDR mapping; reuse it rather than copy 140 entries
        from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP
        return dict(MS_TIMEZONE_TO_IANA_MAP)
    except ImportError:  # pragma: no cover - fallback for a bare install
        return {"UTC": "UTC", "Central Europe Standard Time": "Europe/Prague",
                "Romance Standard Time": "Europe/Paris", "W. Europe Standard Time":
                "Europe/Berlin", "Eastern Standard Time": "America/New_York",
                "GMT Standard Time": "Europe/London", "Pacific Standard Time":
                "America/Los_Angeles"}


WIN_TO_IANA = _win_to_iana()


def item_zone(item: Item) -> dt.tzinfo:
    tz_el = item.props.get("StartTimeZone")
    ms_id = tz_el.get("Id") if tz_el is not None else None
    try:
        return ZoneInfo(WIN_TO_IANA.get(ms_id or "", "UTC"))
    except ZoneInfoNotFoundError:
        return UTC


def _days(text: str | None) -> list[int]:
    out: list[int] = []
    for word in (text or "").split():
        if word == "Day":
            out.extend(range(7))
        elif word == "Weekday":
            out.extend(range(5))
        elif word == "WeekendDay":
            out.extend([5, 6])
        elif word in DAYS:
            out.append(DAYS.index(word))
    return sorted(set(out))


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text.strip()[:10]) if text else None


def _nth_weekday(year: int, month: int, days: list[int], index: int) -> dt.date | None:
    last = calendar.monthrange(year, month)[1]
    matches = [dt.date(year, month, d) for d in range(1, last + 1)
               if dt.date(year, month, d).weekday() in days]
    if not matches:
        return None
    if index == -1:
        return matches[-1]
    return matches[index - 1] if index <= len(matches) else None


def _pattern_dates(pattern: etree._Element, start: dt.date) -> Iterator[dt.date]:
    kind = local(pattern)
    interval = int(pattern.findtext(tq("Interval")) or 1)
    if kind == "DailyRecurrence":
        day = start
        while True:
            yield day
            day += dt.timedelta(days=interval)
    elif kind == "WeeklyRecurrence":
        days = _days(pattern.findtext(tq("DaysOfWeek"))) or [start.weekday()]
        first = DAYS.index(pattern.findtext(tq("FirstDayOfWeek")) or "Monday")
        week_start = start - dt.timedelta(days=(start.weekday() - first) % 7)
        while True:
            for offset in range(7):
                day = week_start + dt.timedelta(days=offset)
                if day.weekday() in days and day >= start:
                    yield day
            week_start += dt.timedelta(weeks=interval)
    elif kind in ("AbsoluteMonthlyRecurrence", "RelativeMonthlyRecurrence",
                  "AbsoluteYearlyRecurrence", "RelativeYearlyRecurrence"):
        yearly = "Yearly" in kind
        step = 12 if yearly else interval
        month_name = pattern.findtext(tq("Month"))
        year, month = start.year, start.month
        if yearly and month_name in MONTHS:
            month = MONTHS.index(month_name)
            if month < start.month:
                year += 1
        while True:
            if kind.startswith("Absolute"):
                dom = int(pattern.findtext(tq("DayOfMonth")) or start.day)
                day = dt.date(year, month, min(dom, calendar.monthrange(year, month)[1]))
            else:
                day = _nth_weekday(year, month, _days(pattern.findtext(tq("DaysOfWeek"))),
                                   INDEXES.get(pattern.findtext(tq("DayOfWeekIndex")) or "", 1))
            if day is not None and day >= start:
                yield day
            month += step
            while month > 12:
                month -= 12
                year += 1


def occurrences(item: Item) -> Iterator[tuple[int, dt.datetime, dt.datetime]]:
    """Yield (1-based index, start UTC, end UTC) for every occurrence, in order."""
    rec = item.props.get("Recurrence")
    start = parse_dt(item.text("Start"))
    end = parse_dt(item.text("End"))
    if rec is None or start is None or end is None:
        return
    children = [c for c in rec if isinstance(c.tag, str)]
    if len(children) < 2:
        return
    pattern, rng = children[0], children[1]
    zone = item_zone(item)
    local_start = start.astimezone(zone)
    duration = end - start
    range_start = _date(rng.findtext(tq("StartDate"))) or local_start.date()
    end_date = _date(rng.findtext(tq("EndDate"))) if local(rng) == "EndDateRecurrence" else None
    number = (int(rng.findtext(tq("NumberOfOccurrences")) or 0)
              if local(rng) == "NumberedRecurrence" else None)
    index = 0
    for day in _pattern_dates(pattern, range_start):
        if end_date is not None and day > end_date:
            return
        index += 1
        if (number is not None and index > number) or index > MAX_OCCURRENCES:
            return
        if index in item.deleted_occurrences:
            continue
        occ_local = dt.datetime.combine(day, local_start.time(), tzinfo=zone)
        occ_start = occ_local.astimezone(UTC)
        yield index, occ_start, occ_start + duration


def occurrence(item: Item, index: int) -> tuple[dt.datetime, dt.datetime] | None:
    for idx, start, end in occurrences(item):
        if idx == index:
            return start, end
        if idx > index:
            return None
    return None


def in_window(item: Item, start: dt.datetime,
              end: dt.datetime) -> Iterator[tuple[int, dt.datetime, dt.datetime]]:
    for idx, occ_start, occ_end in occurrences(item):
        if occ_start >= end:
            return
        if occ_end >= start:
            yield idx, occ_start, occ_end
