"""Expand recurring calendar masters into occurrences, and keep their exceptions.

Occurrences are computed in the series' own time zone wall clock (StartTimeZone),
then converted to UTC: a 09:00 Europe/Prague meeting stays at 09:00 local across DST
(our research prototype got this wrong by one hour, notes §4.2).

Every pattern slot has a 1-based instance index (Exchange's InstanceIndex). A slot is
either generated (an *occurrence*), deleted (`Item.deleted_occurrences`) or modified
(an *exception*, `Item.exceptions`). Like MAPI's recurrence blob, an exception stores
only what differs from the master plus its own pinned Start/End, so later edits of
other master properties still show through; exceptions are not folder items.
"""

from __future__ import annotations

import calendar
import copy
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree

from . import ids
from .ns import local, t_el, tq
from .store import Item
from .timeutil import UTC, fmt_dt, now, parse_dt

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
INDEXES = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
MONTHS = list(calendar.month_name)
MAX_OCCURRENCES = 5000   # safety net for NoEndRecurrence
Times = tuple[dt.datetime, dt.datetime]   # (start, end), UTC


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


def _date(text: str | None, zone: dt.tzinfo) -> dt.date | None:
    """A range StartDate/EndDate as a local date of the series.

    Accepts xs:date with or without offset ("2025-01-06", "2025-01-06+01:00") and the
    datetime exchangelib re-sends after reading a plain date back as local midnight
    ("2025-01-05T23:00:00Z" for 6 January in Prague).
    """
    if not text:
        return None
    text = text.strip()
    if "T" in text:
        parsed = parse_dt(text)
        return parsed.astimezone(zone).date() if parsed is not None else None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _date_with_offset(day: dt.date, zone: dt.tzinfo) -> str:
    offset = zone.utcoffset(dt.datetime.combine(day, dt.time())) or dt.timedelta()
    if not offset:
        return f"{day.isoformat()}Z"
    sign = "-" if offset < dt.timedelta() else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{day.isoformat()}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def render_recurrence(item: Item) -> etree._Element | None:
    """The master's Recurrence with range dates as Exchange writes them: xs:date plus the
    series' UTC offset on that day ("2025-01-06+01:00"). exchangelib reads that form back
    as a date, so a refreshed master re-saves the same range (a bare date would come back
    as local midnight and be re-sent as a UTC datetime of the previous day)."""
    rec = item.props.get("Recurrence")
    if rec is None:
        return None
    out = copy.deepcopy(rec)
    zone = item_zone(item)
    for name in ("StartDate", "EndDate"):
        for el in out.iter(tq(name)):
            day = _date(el.text, zone)
            if day is not None:
                el.text = _date_with_offset(day, zone)
    return out


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


def slots(item: Item) -> Iterator[tuple[int, dt.datetime, dt.datetime]]:
    """Yield (1-based index, start UTC, end UTC) for every pattern slot, deleted ones too."""
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
    # An all-day series keeps whole local days (allday.py): 23 or 25 hours over a DST change.
    all_day = (item.text("IsAllDayEvent") or "").strip().lower() in ("true", "1")
    days = end.astimezone(zone).date() - local_start.date()
    range_start = _date(rng.findtext(tq("StartDate")), zone) or local_start.date()
    end_date = (_date(rng.findtext(tq("EndDate")), zone) if local(rng) == "EndDateRecurrence"
                else None)
    number = (int(rng.findtext(tq("NumberOfOccurrences")) or 0)
              if local(rng) == "NumberedRecurrence" else None)
    for index, day in enumerate(_pattern_dates(pattern, range_start), start=1):
        if end_date is not None and day > end_date:
            return
        if (number is not None and index > number) or index > MAX_OCCURRENCES:
            return
        occ_local = dt.datetime.combine(day, local_start.time(), tzinfo=zone)
        occ_start = occ_local.astimezone(UTC)
        occ_end = (dt.datetime.combine(day + days, end.astimezone(zone).time(), tzinfo=zone
                                       ).astimezone(UTC) if all_day else occ_start + duration)
        yield index, occ_start, occ_end


def occurrences(item: Item) -> Iterator[tuple[int, dt.datetime, dt.datetime]]:
    """Yield (index, original start, original end) of every slot not deleted, in order."""
    for idx, start, end in slots(item):
        if idx not in item.deleted_occurrences:
            yield idx, start, end


def slot(item: Item, index: int) -> Times | None:
    """The original times of slot `index`, whether or not it was deleted."""
    for idx, start, end in slots(item):
        if idx == index:
            return start, end
        if idx > index:
            return None
    return None


def occurrence(item: Item, index: int) -> Times | None:
    """Original times of a live instance (occurrence or exception); None if deleted/absent."""
    if index in item.deleted_occurrences:
        return None
    return slot(item, index)


def instances(item: Item) -> Iterator[tuple[int, dt.datetime, dt.datetime, dt.datetime]]:
    """Yield (index, effective start, effective end, original start) of live instances."""
    for idx, start, end in occurrences(item):
        exc = item.exceptions.get(idx)
        if exc is not None:
            start_eff, end_eff = exc.times()
            yield idx, start_eff, end_eff, start
        else:
            yield idx, start, end, start


def in_window(item: Item, start: dt.datetime,
              end: dt.datetime) -> Iterator[tuple[int, dt.datetime, dt.datetime, Times | None]]:
    """Instances overlapping [start, end) at their *effective* times, unordered.

    Yields (index, start, end, original slot times or None when not known yet). Generated
    occurrences come in slot order, so their scan stops at the window's end; exceptions
    (few) are checked one by one because a moved one may leave or enter the window.
    Passing the slot times on spares the renderer a second expansion per instance.
    """
    for idx, occ_start, occ_end in occurrences(item):
        if occ_start >= end:
            break
        if occ_end >= start and idx not in item.exceptions:
            yield idx, occ_start, occ_end, (occ_start, occ_end)
    for idx, exc in item.exceptions.items():
        exc_start, exc_end = exc.times()
        if exc_start < end and exc_end >= start:
            yield idx, exc_start, exc_end, None


# --- exceptions ----------------------------------------------------------------------------
# Series-level properties an instance never has (and a client cannot give it).
SERIES_ONLY = frozenset({"Recurrence", "ModifiedOccurrences", "DeletedOccurrences",
                         "FirstOccurrence", "LastOccurrence"})
# Identity an instance inherits from its master whatever the client sends: exchangelib's
# full save() of an exception re-sends UID and a DeleteItemField for Recurrence.
INHERITED = frozenset({"UID"})


def _same(a: etree._Element, b: etree._Element) -> bool:
    return (etree.tostring(a, method="c14n", exclusive=True)
            == etree.tostring(b, method="c14n", exclusive=True))


@dataclass
class OccurrenceException:
    """A modified occurrence: overrides of the master's properties, with its own ChangeKey.

    `props` always holds Start and End (an exception's times are pinned, not generated);
    `removed_props` / `removed_ext` are master properties cleared on this instance only.
    """
    props: dict[str, etree._Element] = field(default_factory=dict)
    ext: dict[str, etree._Element] = field(default_factory=dict)
    removed_props: set[str] = field(default_factory=set)
    removed_ext: set[str] = field(default_factory=set)
    changekey: str = field(default_factory=ids.change_key)
    modified: dt.datetime = field(default_factory=now)

    def times(self) -> Times:
        start = parse_dt(self.props["Start"].text)
        end = parse_dt(self.props["End"].text)
        assert start is not None and end is not None   # validated when stored
        return start, end


def instance_item(master: Item, index: int, original: Times | None = None) -> Item:
    """A detached Item holding instance `index` as a client sees it (deep copies).

    Used both to render an occurrence/exception and as the scratch copy that an
    UpdateItem on an instance is applied to (see `save_exception`). `original`: the
    slot's times if the caller already has them.
    """
    exc: OccurrenceException | None = master.exceptions.get(index)
    if original is None and exc is None:
        original = slot(master, index)
    props = {k: copy.deepcopy(v) for k, v in master.props.items() if k not in SERIES_ONLY}
    ext = {k: copy.deepcopy(v) for k, v in master.ext.items()}
    if exc is not None:
        for name in exc.removed_props:
            props.pop(name, None)
        for key in exc.removed_ext:
            ext.pop(key, None)
        props.update({k: copy.deepcopy(v) for k, v in exc.props.items()})
        ext.update({k: copy.deepcopy(v) for k, v in exc.ext.items()})
    elif original is not None:
        props["Start"] = t_el("Start", fmt_dt(original[0]))
        props["End"] = t_el("End", fmt_dt(original[1]))
    return Item(id=ids.occurrence_id(master.id, index), tag=master.tag,
                folder_id=master.folder_id, mailbox=master.mailbox,
                changekey=exc.changekey if exc is not None else master.changekey,
                props=props, ext=ext, attachments=master.attachments, created=master.created,
                modified=exc.modified if exc is not None else master.modified,
                received=master.received, size=master.size,
                meeting_requests_sent=master.meeting_requests_sent)


def save_exception(master: Item, index: int, updated: Item) -> OccurrenceException:
    """Store `updated` (an `instance_item` after the client's changes) as an exception.

    Only differences from the master are kept; Start/End are always kept so the instance
    stays where it is even though it is no longer generated. A new ChangeKey every time.
    """
    exc = OccurrenceException()
    for name, el in updated.props.items():
        if name in SERIES_ONLY or name in INHERITED:
            continue
        base = master.props.get(name)
        if name in ("Start", "End") or base is None or not _same(base, el):
            exc.props[name] = el
    exc.removed_props = {name for name in master.props
                         if name not in updated.props and name not in SERIES_ONLY
                         and name not in INHERITED}
    for key, el in updated.ext.items():
        base = master.ext.get(key)
        if base is None or not _same(base, el):
            exc.ext[key] = el
    exc.removed_ext = {key for key in master.ext if key not in updated.ext}
    master.exceptions[index] = exc
    return exc


def crosses_boundary(master: Item, index: int, start: dt.datetime) -> bool:
    """Exchange refuses to move an instance onto or past an adjacent instance's day
    (ErrorOccurrenceCrossingBoundary); days are compared in the series' time zone."""
    zone = item_zone(master)
    day = start.astimezone(zone).date()
    previous: dt.date | None = None
    for idx, eff_start, _end, _orig in instances(master):
        if idx < index:
            previous = eff_start.astimezone(zone).date()
        elif idx > index:
            return (previous is not None and day <= previous) or day >= eff_start.astimezone(
                zone).date()
    return previous is not None and day <= previous


def signature(item: Item) -> tuple[object, ...]:
    """What defines the series' slots: pattern, range, start/end instants and time zone.

    Exchange discards all exceptions (modified and deleted occurrences) when this
    changes; re-sending identical values (exchangelib's full save()) keeps them.
    """
    rec = render_recurrence(item)   # normalised, so equal ranges written differently match
    tz_el = item.props.get("StartTimeZone")
    return (etree.tostring(rec, method="c14n", exclusive=True) if rec is not None else None,
            parse_dt(item.text("Start")), parse_dt(item.text("End")),
            tz_el.get("Id") if tz_el is not None else None)


def reset_exceptions(item: Item) -> None:
    item.exceptions.clear()
    item.deleted_occurrences.clear()


def is_bounded(item: Item) -> bool:
    """True when the series has an end (a number of occurrences or an end date)."""
    rec = item.props.get("Recurrence")
    children = [c for c in rec if isinstance(c.tag, str)] if rec is not None else []
    return len(children) >= 2 and local(children[1]) != "NoEndRecurrence"
