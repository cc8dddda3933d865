"""The CRM's JSON fields in words, as the admin shows them to a person.

`Event.recurrence`, `Event.deleted_occurrences` and `Email.recipients` are stored as JSON the
sync engine reads; people read "every 2 weeks on Monday and Wednesday, until 31 March 2027",
dates and addresses. Weekday and month names come from Django's own translations.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any

from django.utils.dates import MONTHS, WEEKDAYS
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext

# Exchange's day names (engine/records.py RecurrenceRule.weekdays) to Django's weekday numbers.
_DAY_NUMBERS = {name: number for number, name in enumerate(
    ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"))}


def _day_name(name: str) -> str:
    if name in _DAY_NUMBERS:
        return str(WEEKDAYS[_DAY_NUMBERS[name]])
    return {"Day": _("day"), "Weekday": _("weekday"),
            "WeekendDay": _("weekend day")}.get(name, name)


def _week_index(index: str | None) -> str:
    return {"First": _("first"), "Second": _("second"), "Third": _("third"),
            "Fourth": _("fourth"), "Last": _("last")}.get(index or "First", index or "")


def and_list(items: Sequence[str]) -> str:
    """"Monday", "Monday and Wednesday", "Monday, Wednesday and Friday"."""
    if len(items) <= 1:
        return "".join(items)
    return _("%(first)s and %(last)s") % {"first": ", ".join(items[:-1]), "last": items[-1]}


def day_text(day: dt.date) -> str:
    # Translators: a date inside a sentence, in Django's date format characters.
    return date_format(day, pgettext("date in a sentence", "j F Y"))


def _pattern(pattern: dict[str, Any], first_day: dt.date | None) -> str:
    kind = pattern.get("type") or "weekly"
    n = max(1, int(pattern.get("interval") or 1))
    days = and_list([_day_name(d) for d in pattern.get("weekdays") or ()])
    if not days and first_day is not None:
        days = str(WEEKDAYS[first_day.weekday()])
    day_of_month = pattern.get("day_of_month") or (first_day.day if first_day else 1)
    month = str(MONTHS.get(pattern.get("month") or (first_day.month if first_day else 1), ""))
    which = _week_index(pattern.get("week_index"))
    if kind == "daily":
        return ngettext("every day", "every %(n)d days", n) % {"n": n}
    if kind == "weekly":
        return ngettext("every week on %(days)s", "every %(n)d weeks on %(days)s", n) % {
            "n": n, "days": days}
    if kind == "absolute_monthly":
        return ngettext("every month on day %(day)d", "every %(n)d months on day %(day)d",
                        n) % {"n": n, "day": day_of_month}
    if kind == "relative_monthly":
        return ngettext("every month on the %(which)s %(days)s",
                        "every %(n)d months on the %(which)s %(days)s", n) % {
            "n": n, "which": which, "days": days}
    if kind == "absolute_yearly":
        return _("every year on %(day)d %(month)s") % {"day": day_of_month, "month": month}
    if kind == "relative_yearly":
        return _("every year on the %(which)s %(days)s of %(month)s") % {
            "which": which, "days": days, "month": month}
    return _("repeats (%(pattern)s)") % {"pattern": kind}


def recurrence_text(recurrence: dict[str, Any] | None) -> str:
    """A series' rule (the `Event.recurrence` JSON) as a sentence; "" for a single event."""
    if not recurrence or not recurrence.get("pattern"):
        return ""
    span = recurrence.get("range") or {}
    start = dt.date.fromisoformat(span["start"]) if span.get("start") else None
    text = _pattern(recurrence["pattern"], start)
    if span.get("end"):
        return _("%(pattern)s, until %(date)s") % {
            "pattern": text, "date": day_text(dt.date.fromisoformat(span["end"]))}
    if span.get("count"):
        count = int(span["count"])
        return ngettext("%(pattern)s, once", "%(pattern)s, %(count)d times", count) % {
            "pattern": text, "count": count}
    return _("%(pattern)s, without end") % {"pattern": text}


def zone_of(name: str) -> dt.tzinfo:
    """An event's zone; a blank or unknown name is read as UTC, the zone times are stored in."""
    try:
        return zoneinfo.ZoneInfo(name) if name else dt.UTC
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def moment_text(moment: dt.datetime, zone: dt.tzinfo) -> str:
    # Translators: a date with its time, in Django's date format characters.
    return date_format(moment.astimezone(zone), pgettext("date and time", "j F Y, H:i"))


def occurrences_text(values: Iterable[str], zone_name: str) -> list[str]:
    """The deleted occurrences' original starts (ISO strings), on the event's wall clock."""
    zone = zone_of(zone_name)
    moments = sorted(dt.datetime.fromisoformat(v).astimezone(dt.UTC) for v in values)
    return [moment_text(moment, zone) for moment in moments]


def address_text(address: str, name: str) -> str:
    return f"{name} <{address}>" if name and address else name or address


def recipients_lines(recipients: dict[str, Any] | None, names: dict[str, str]) -> list[str]:
    """One line per recipient, "To: Name <address>" or "Cc: …".

    The importer stores bare addresses; `names` (by lower-case address, e.g. the e-mail's CRM
    persons) puts a name to those it knows."""
    headings = {"to": pgettext("e-mail recipients", "To"), "cc": _("Cc"), "bcc": _("Bcc")}
    lines = []
    for kind, entries in (recipients or {}).items():
        for entry in entries or ():
            address = str(entry)
            name = names.get(address.casefold(), "")
            lines.append(f"{headings.get(kind, kind)}: {address_text(address, name)}")
    return lines
