"""A series' rule in Raynet's terms, both ways.

Raynet shows a recurring activity's `recurrence` ({count, endDate, interval, recurrenceDay,
startDate}) but its API takes none on create or edit (MeetingInsertDto and MeetingEditDto
have no such attribute). So:

- a series made in Raynet is read from its `recurrence` (`rule_from_raynet`);
- a series written from Exchange keeps its whole rule, its time zone, its deleted
  occurrences and the keys of its moved occurrences (meetings of their own) in one external
  id of the series meeting, `series:<token>;…` (`SeriesNote`), which Raynet keeps as it is
  and no user edits. Only path-safe characters are used: an external id is also a path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from typing import Any

from engine.records import RecurrenceRule

SERIES_PREFIX = "series:"
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Raynet's intervals as the engine's patterns; a day-of-month or day-of-year rule repeats on
# the start's day.
INTERVALS = {"DAILY": "daily", "WEEKLY": "weekly", "MONTHLY": "absolute_monthly",
             "YEARLY": "absolute_yearly"}
_MOMENT = "%Y%m%dT%H%M%SZ"


@dataclasses.dataclass
class SeriesNote:
    """What a series meeting carries beyond Raynet's attributes."""

    rule: RecurrenceRule
    time_zone: str = ""
    deleted: tuple[dt.datetime, ...] = ()
    # The meetings holding the moved occurrences: (Raynet id, the occurrence's original
    # start), so that one deleted in Raynet is known as a deleted occurrence.
    exceptions: tuple[tuple[str, dt.datetime], ...] = ()
    token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(6))

    def ext_id(self) -> str:
        rule = self.rule
        parts = {
            "P": rule.pattern, "I": str(rule.interval), "D": ".".join(rule.weekdays),
            "M": _number(rule.day_of_month), "Y": _number(rule.month),
            "W": rule.week_index or "", "F": rule.first_day_of_week,
            "S": rule.start.isoformat() if rule.start else "",
            "E": rule.end.isoformat() if rule.end else "", "C": _number(rule.count),
            # A zone's "/" would split the path the external id is read from.
            "Z": self.time_zone.replace("/", "+"),
            "X": ".".join(d.astimezone(dt.UTC).strftime(_MOMENT) for d in sorted(self.deleted)),
            "K": ".".join(f"{key}-{moment.astimezone(dt.UTC).strftime(_MOMENT)}"
                          for key, moment in self.exceptions)}
        return SERIES_PREFIX + self.token + ";" + ";".join(f"{k}={v}" for k, v in parts.items())

    @classmethod
    def parse(cls, ext_id: str) -> SeriesNote | None:
        """None for an external id that is not a series note (or a damaged one)."""
        if not ext_id.startswith(SERIES_PREFIX):
            return None
        token, _, rest = ext_id.removeprefix(SERIES_PREFIX).partition(";")
        try:
            parts = dict(part.split("=", 1) for part in rest.split(";"))
            rule = RecurrenceRule(
                pattern=parts["P"], interval=int(parts["I"] or 1),
                weekdays=tuple(filter(None, parts["D"].split("."))),
                day_of_month=_int(parts["M"]), month=_int(parts["Y"]),
                week_index=parts["W"] or None, first_day_of_week=parts["F"] or "Monday",
                start=dt.date.fromisoformat(parts["S"]) if parts["S"] else None,
                end=dt.date.fromisoformat(parts["E"]) if parts["E"] else None,
                count=_int(parts["C"]))
            deleted = tuple(dt.datetime.strptime(d, _MOMENT).replace(tzinfo=dt.UTC)
                            for d in filter(None, parts["X"].split(".")))
            exceptions = tuple(
                (key, dt.datetime.strptime(moment, _MOMENT).replace(tzinfo=dt.UTC))
                for key, moment in (pair.split("-", 1)
                                    for pair in filter(None, parts.get("K", "").split("."))))
        except (KeyError, ValueError):
            return None
        return cls(rule, parts["Z"].replace("+", "/"), deleted, exceptions, token)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.exceptions)

    @classmethod
    def of(cls, ext_ids: Any) -> SeriesNote | None:
        for ext_id in ext_ids or ():
            note = cls.parse(str(ext_id))
            if note is not None:
                return note
        return None


def rule_from_raynet(recurrence: Any, first: dt.date | None) -> RecurrenceRule | None:
    """The rule of a series made in Raynet; None for a meeting that does not recur.

    `recurrenceDay` is read as the ISO day of the week (1 Monday … 7 Sunday) of a weekly
    series, else the day of the month; a weekly series without it repeats on the start's day.
    """
    if not isinstance(recurrence, dict) or recurrence.get("interval") not in INTERVALS:
        return None
    pattern = INTERVALS[recurrence["interval"]]
    start = _date(recurrence.get("startDate")) or first
    day = _int(recurrence.get("recurrenceDay"))
    weekdays: tuple[str, ...] = ()
    day_of_month = month = None
    if pattern == "weekly":
        weekdays = (DAYS[day - 1],) if day and 1 <= day <= 7 else (
            (DAYS[start.weekday()],) if start else ())
    elif pattern == "absolute_monthly":
        day_of_month = day if day and 1 <= day <= 31 else (start.day if start else None)
    elif pattern == "absolute_yearly" and start is not None:
        day_of_month, month = start.day, start.month
    return RecurrenceRule(pattern, 1, weekdays=weekdays, day_of_month=day_of_month,
                          month=month, start=start, end=_date(recurrence.get("endDate")),
                          count=_int(recurrence.get("count")) or None)


def _number(value: int | None) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
