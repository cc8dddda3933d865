"""Graph's patternedRecurrence <-> the EWS Recurrence element the store (and the
expansion in ewsim/recurrence.py) uses. Child order follows the EWS schema."""

from __future__ import annotations

import datetime as dt
from typing import Any

from lxml import etree

from ..ns import T, local, sub, t_el, tq
from ..recurrence import DAYS, MONTHS
from .errors import bad_request

PATTERNS = {"daily": "DailyRecurrence", "weekly": "WeeklyRecurrence",
            "absoluteMonthly": "AbsoluteMonthlyRecurrence",
            "relativeMonthly": "RelativeMonthlyRecurrence",
            "absoluteYearly": "AbsoluteYearlyRecurrence",
            "relativeYearly": "RelativeYearlyRecurrence"}
RANGES = {"endDate": "EndDateRecurrence", "noEnd": "NoEndRecurrence",
          "numbered": "NumberedRecurrence"}
INDEX = {"first": "First", "second": "Second", "third": "Third", "fourth": "Fourth",
         "last": "Last"}


def _days(values: Any) -> str:
    if not isinstance(values, list) or not values:
        raise bad_request("daysOfWeek is required for this recurrence pattern.",
                          "ErrorInvalidRecurrence")
    try:
        return " ".join(DAYS[[d.lower() for d in DAYS].index(str(v).lower())] for v in values)
    except ValueError as exc:
        raise bad_request(f"Invalid daysOfWeek {values}.", "ErrorInvalidRecurrence") from exc


def _date(value: Any, name: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError as exc:
        raise bad_request(f"recurrence range {name} must be a date.",
                          "ErrorInvalidRecurrence") from exc


def to_ews(data: Any) -> etree._Element:
    if not isinstance(data, dict) or not isinstance(data.get("pattern"), dict) \
            or not isinstance(data.get("range"), dict):
        raise bad_request("recurrence needs a pattern and a range.", "ErrorInvalidRecurrence")
    pattern, rng = data["pattern"], data["range"]
    kind = PATTERNS.get(str(pattern.get("type")))
    if kind is None:
        raise bad_request(f"Unknown recurrence pattern type {pattern.get('type')!r}.",
                          "ErrorInvalidRecurrence")
    rec = t_el("Recurrence")
    el = sub(rec, T, kind)
    interval = str(int(pattern.get("interval") or 1))
    if kind in ("DailyRecurrence", "WeeklyRecurrence", "AbsoluteMonthlyRecurrence",
                "RelativeMonthlyRecurrence"):
        sub(el, T, "Interval", interval)
    if kind in ("WeeklyRecurrence", "RelativeMonthlyRecurrence", "RelativeYearlyRecurrence"):
        sub(el, T, "DaysOfWeek", _days(pattern.get("daysOfWeek")))
    if kind == "WeeklyRecurrence":
        first = str(pattern.get("firstDayOfWeek") or "sunday").capitalize()
        sub(el, T, "FirstDayOfWeek", first if first in DAYS else "Sunday")
    if kind in ("RelativeMonthlyRecurrence", "RelativeYearlyRecurrence"):
        sub(el, T, "DayOfWeekIndex", INDEX.get(str(pattern.get("index") or "first"), "First"))
    if kind in ("AbsoluteMonthlyRecurrence", "AbsoluteYearlyRecurrence"):
        sub(el, T, "DayOfMonth", str(int(pattern.get("dayOfMonth") or 1)))
    if kind in ("AbsoluteYearlyRecurrence", "RelativeYearlyRecurrence"):
        month = int(pattern.get("month") or 1)
        if not 1 <= month <= 12:
            raise bad_request("month must be 1-12.", "ErrorInvalidRecurrence")
        sub(el, T, "Month", MONTHS[month])
    range_kind = RANGES.get(str(rng.get("type")))
    if range_kind is None:
        raise bad_request(f"Unknown recurrence range type {rng.get('type')!r}.",
                          "ErrorInvalidRecurrence")
    range_el = sub(rec, T, range_kind)
    sub(range_el, T, "StartDate", _date(rng.get("startDate"), "startDate"))
    if range_kind == "EndDateRecurrence":
        sub(range_el, T, "EndDate", _date(rng.get("endDate"), "endDate"))
    if range_kind == "NumberedRecurrence":
        count = int(rng.get("numberOfOccurrences") or 0)
        if count < 1:
            raise bad_request("numberOfOccurrences must be at least 1.",
                              "ErrorInvalidRecurrence")
        sub(range_el, T, "NumberOfOccurrences", str(count))
    return rec


def to_json(rec: etree._Element | None, zone_name: str) -> dict[str, Any] | None:
    if rec is None:
        return None
    children = [c for c in rec if isinstance(c.tag, str)]
    if len(children) < 2:
        return None
    pattern_el, range_el = children[0], children[1]
    kinds = {v: k for k, v in PATTERNS.items()}
    days_text = pattern_el.findtext(tq("DaysOfWeek"))
    index_text = pattern_el.findtext(tq("DayOfWeekIndex"))
    month_text = pattern_el.findtext(tq("Month"))
    pattern = {
        "type": kinds.get(local(pattern_el), "daily"),
        "interval": int(pattern_el.findtext(tq("Interval")) or 1),
        "month": MONTHS.index(month_text) if month_text in MONTHS else 0,
        "dayOfMonth": int(pattern_el.findtext(tq("DayOfMonth")) or 0),
        "daysOfWeek": [d.lower() for d in (days_text or "").split()],
        "firstDayOfWeek": (pattern_el.findtext(tq("FirstDayOfWeek")) or "Sunday").lower(),
        "index": {v: k for k, v in INDEX.items()}.get(index_text or "First", "first"),
    }
    range_kinds = {v: k for k, v in RANGES.items()}
    start_text = (range_el.findtext(tq("StartDate")) or "")[:10]
    end_text = (range_el.findtext(tq("EndDate")) or "")[:10]
    rng = {"type": range_kinds.get(local(range_el), "noEnd"), "startDate": start_text,
           "endDate": end_text or "0001-01-01", "recurrenceTimeZone": zone_name,
           "numberOfOccurrences": int(range_el.findtext(tq("NumberOfOccurrences")) or 0)}
    return {"pattern": pattern, "range": rng}
