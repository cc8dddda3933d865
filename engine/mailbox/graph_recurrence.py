"""Recurrence and time zones <-> Microsoft Graph JSON: patternedRecurrence, and the zone names
Graph gives (IANA, or Windows as Outlook writes them)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from typing import Any

from engine.records import RecurrenceRule

# --- recurrence -------------------------------------------------------------------------------
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# EWS's day groups; Graph lists the days instead.
DAY_GROUPS = {"Day": WEEKDAYS, "Weekday": WEEKDAYS[:5], "WeekendDay": WEEKDAYS[5:]}
WEEK_INDEXES = ("First", "Second", "Third", "Fourth", "Last")
PATTERNS = {"daily": "daily", "weekly": "weekly", "absolute_monthly": "absoluteMonthly",
            "relative_monthly": "relativeMonthly", "absolute_yearly": "absoluteYearly",
            "relative_yearly": "relativeYearly"}
PATTERN_NAMES = {graph: ours for ours, graph in PATTERNS.items()}


def _days_json(weekdays: Iterable[str]) -> list[str]:
    days: list[str] = []
    for name in weekdays:
        for day in DAY_GROUPS.get(name, (name,)):
            if day.lower() not in days:
                days.append(day.lower())
    return days


def _days(values: Iterable[str], relative: bool) -> tuple[str, ...]:
    days = tuple(str(v).capitalize() for v in values)
    if relative and len(days) > 1:
        for group, members in DAY_GROUPS.items():
            if set(days) == set(members):
                return (group,)
    return days


def recurrence_json(rule: RecurrenceRule, time_zone: str) -> dict[str, Any]:
    """Graph's patternedRecurrence for a rule (ranges in the event's own zone)."""
    if rule.pattern not in PATTERNS:
        raise ValueError(f"unknown recurrence pattern {rule.pattern!r}")
    pattern: dict[str, Any] = {"type": PATTERNS[rule.pattern], "interval": rule.interval or 1}
    if rule.pattern == "weekly":
        pattern["daysOfWeek"] = _days_json(rule.weekdays)
        pattern["firstDayOfWeek"] = rule.first_day_of_week.lower()
    elif rule.pattern in ("relative_monthly", "relative_yearly"):
        pattern["daysOfWeek"] = _days_json(rule.weekdays)
        pattern["index"] = (rule.week_index or "First").lower()
    if rule.pattern in ("absolute_monthly", "absolute_yearly"):
        pattern["dayOfMonth"] = rule.day_of_month or 1
    if rule.pattern in ("absolute_yearly", "relative_yearly"):
        pattern["month"] = rule.month or 1
    if rule.start is None:
        raise ValueError("a recurrence needs its first day")
    range_: dict[str, Any] = {"startDate": rule.start.isoformat(), "recurrenceTimeZone": time_zone}
    if rule.count:
        range_.update(type="numbered", numberOfOccurrences=rule.count)
    elif rule.end:
        range_.update(type="endDate", endDate=rule.end.isoformat())
    else:
        range_["type"] = "noEnd"
    return {"pattern": pattern, "range": range_}


def _date(value: Any) -> dt.date | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    return dt.date.fromisoformat(str(value)[:10])


def recurrence_rule(value: dict[str, Any] | None) -> RecurrenceRule | None:
    if not value or not value.get("pattern"):
        return None
    pattern, range_ = value["pattern"], value.get("range") or {}
    name = PATTERN_NAMES.get(str(pattern.get("type")))
    if name is None:
        return None
    relative = name.startswith("relative")
    common: dict[str, Any] = {"start": _date(range_.get("startDate"))}
    kind = range_.get("type")
    if kind == "numbered":
        common["count"] = int(range_.get("numberOfOccurrences") or 0) or None
    elif kind == "endDate":
        common["end"] = _date(range_.get("endDate"))
    interval = 1 if name.endswith("yearly") else int(pattern.get("interval") or 1)
    if name == "weekly":
        days = _days(pattern.get("daysOfWeek") or [], False)
        first = str(pattern.get("firstDayOfWeek") or "sunday").capitalize()
        return RecurrenceRule(name, interval, weekdays=days, first_day_of_week=first, **common)
    if relative:
        common["weekdays"] = _days(pattern.get("daysOfWeek") or [], True)
        common["week_index"] = str(pattern.get("index") or "first").capitalize()
    if name.startswith("absolute"):
        common["day_of_month"] = int(pattern.get("dayOfMonth") or 1)
    if name.endswith("yearly"):
        common["month"] = int(pattern.get("month") or 1)
    return RecurrenceRule(name, interval, **common)


# --- time zones ---------------------------------------------------------------------------------
def _windows_zones() -> dict[str, str]:
    # The CLDR table of Windows zone names exchangelib ships (data only, no EWS involved).
    from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP
    return dict(MS_TIMEZONE_TO_IANA_MAP)


_WINDOWS: dict[str, str] = {}


def iana_zone(name: str, home_zone: str = "") -> zoneinfo.ZoneInfo | None:
    """An IANA zone for the name Graph gives (IANA, or Windows as Outlook writes it)."""
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    if not _WINDOWS:
        _WINDOWS.update(_windows_zones())
    key = _WINDOWS.get(name)
    if key is None:
        return None
    # Windows names one zone for several cities: the user's own city reads better.
    if home_zone:
        try:
            home = zoneinfo.ZoneInfo(home_zone)
            probe = dt.datetime(2030, 1, 15, 12, tzinfo=dt.UTC), dt.datetime(2030, 7, 15, 12,
                                                                               tzinfo=dt.UTC)
            if all(p.astimezone(home).utcoffset() == p.astimezone(zoneinfo.ZoneInfo(key))
                   .utcoffset() for p in probe):
                return home
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return zoneinfo.ZoneInfo(key)
