"""All-day calendar items: their start and end sit on midnights of the item's time zone.

EWS takes other times and moves them, as Exchange does ("Create all-day events by using
EWS in Exchange", learn.microsoft.com/exchange/client-developer/exchange-web-services/
how-to-create-all-day-events-by-using-ews-in-exchange): a non-midnight start goes down to
the midnight before it, a non-midnight end up to the midnight after it, both on the wall
clock of the request's or appointment's time zone (StartTimeZone for the start, EndTimeZone
for the end; a recurring master's are the series'). Because the midnights are local, an
all-day event over a daylight-saving change lasts 23 or 25 hours in UTC.

Graph refuses such an event instead (event resource, `isAllDay`: "start and end time must
be set to midnight and be in the same time zone"), see `graph_problem`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .ns import t_el
from .recurrence import WIN_TO_IANA
from .store import Item
from .timeutil import UTC, fmt_dt, parse_dt


def is_all_day(item: Item) -> bool:
    return item.tag == "CalendarItem" and (item.text("IsAllDayEvent") or "").strip().lower() in (
        "true", "1")


def _zone(item: Item, tag: str) -> dt.tzinfo:
    """The zone named by StartTimeZone/EndTimeZone; the start's when the end has none (an
    Exchange 2007 client sends one MeetingTimeZone, which ewsim reads as UTC)."""
    for name in (tag, "StartTimeZone"):
        el = item.props.get(name)
        ms_id = el.get("Id") if el is not None else None
        if ms_id:
            try:
                return ZoneInfo(WIN_TO_IANA.get(ms_id, "UTC"))
            except ZoneInfoNotFoundError:
                return UTC
    return UTC


def _midnight(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(UTC)


def floor_midnight(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The local midnight at or before `instant`."""
    return _midnight(instant.astimezone(zone).date(), zone)


def ceil_midnight(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The local midnight at or after `instant`."""
    local = instant.astimezone(zone)
    day = local.date() if local.time() == dt.time() else local.date() + dt.timedelta(days=1)
    return _midnight(day, zone)


def snap_to_midnights(item: Item) -> None:
    """Move an all-day item's Start down and End up to local midnights (no-op otherwise)."""
    if not is_all_day(item):
        return
    start, end = parse_dt(item.text("Start")), parse_dt(item.text("End"))
    if start is not None:
        item.props["Start"] = t_el("Start", fmt_dt(floor_midnight(start, _zone(item,
                                                                              "StartTimeZone"))))
    if end is not None:
        item.props["End"] = t_el("End", fmt_dt(ceil_midnight(end, _zone(item, "EndTimeZone"))))


def graph_problem(item: Item) -> str | None:
    """Why Graph refuses this all-day event, or None when it is fine."""
    if not is_all_day(item):
        return None
    start_zone, end_zone = item.props.get("StartTimeZone"), item.props.get("EndTimeZone")
    if (start_zone is not None and end_zone is not None
            and start_zone.get("Id") != end_zone.get("Id")):
        return "The start and end of an all-day event must be in the same time zone."
    for tag, zone_tag in (("Start", "StartTimeZone"), ("End", "EndTimeZone")):
        instant = parse_dt(item.text(tag))
        if instant is not None and floor_midnight(instant, _zone(item, zone_tag)) != instant:
            return "The start and end of an all-day event must be set to midnight."
    return None
