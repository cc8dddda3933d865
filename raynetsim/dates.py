"""Raynet's two date-time formats: local `yyyy-MM-dd HH:mm` in the API user's zone (the
default), and ISO 8601 with milliseconds and offset when `dateFormat=ISO8601` is asked for.
Both are accepted on input (info.description, "Datum a čas")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

LOCAL_FORMAT = "%Y-%m-%d %H:%M"


class DateError(ValueError):
    pass


def parse(value: str, zone: ZoneInfo) -> datetime:
    text = value.strip()
    try:
        if "T" in text:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
        if len(text) == 10:
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=zone)
        return datetime.strptime(text, LOCAL_FORMAT).replace(tzinfo=zone)
    except ValueError as exc:
        raise DateError(f"Unparseable date {value!r}") from exc


def render(moment: datetime | None, zone: ZoneInfo, iso: bool) -> str | None:
    if moment is None:
        return None
    local = moment.astimezone(zone)
    return local.isoformat(timespec="milliseconds") if iso else local.strftime(LOCAL_FORMAT)


def next_utc_midnight(moment: datetime) -> datetime:
    """When the daily request budget starts again (Raynet counts UTC days)."""
    day = moment.astimezone(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
