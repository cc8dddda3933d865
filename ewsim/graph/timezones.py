"""Graph's dateTimeTimeZone values: {"dateTime": "2025-01-06T09:00:00.0000000", "timeZone": …}.

Graph accepts Windows zone names ("Central Europe Standard Time") and IANA names; the
store keeps UTC instants plus the Windows id in StartTimeZone (what EWS and the
recurrence expansion use). Answers are in `Prefer: outlook.timezone` (default UTC).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..recurrence import WIN_TO_IANA
from ..timeutil import UTC
from .errors import bad_request


def _iana_to_windows() -> dict[str, str]:
    try:   # exchangelib ships the CLDR mapping
        from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP
        return {iana: ms for iana, (ms, _territory) in IANA_TO_MS_TIMEZONE_MAP.items()}
    except ImportError:  # pragma: no cover - bare install
        return {iana: ms for ms, iana in WIN_TO_IANA.items()}


IANA_TO_WIN = _iana_to_windows()


def zone(name: str | None) -> dt.tzinfo:
    """A Windows or IANA name as a tzinfo; unknown names raise 400 like Graph."""
    if not name or name.upper() in ("UTC", "ETC/UTC", "COORDINATED UNIVERSAL TIME"):
        return UTC
    iana = WIN_TO_IANA.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise bad_request(f"A valid TimeZone value must be specified. The following "
                          f"TimeZone value is not supported: '{name}'.",
                          "TimeZoneNotSupportedException") from exc


def windows_name(name: str | None) -> str:
    if not name or name.upper() in ("UTC", "ETC/UTC"):
        return "UTC"
    if name in WIN_TO_IANA:
        return name
    return IANA_TO_WIN.get(name, "UTC")


def parse(value: Any, field: str) -> tuple[dt.datetime, str]:
    """A request's dateTimeTimeZone -> (UTC instant, Windows zone name)."""
    if not isinstance(value, dict) or not value.get("dateTime"):
        raise bad_request(f"{field} must be a dateTimeTimeZone with dateTime and timeZone.",
                          "ErrorInvalidProperty")
    # Graph writes seven fraction digits, which fromisoformat does not take: drop them.
    text = re.sub(r"\.\d+", "", str(value["dateTime"]))
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        naive = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise bad_request(f"Cannot convert '{value['dateTime']}' to a date and time.",
                          "ErrorInvalidProperty") from exc
    if naive.tzinfo is not None:
        return naive.astimezone(UTC), windows_name(value.get("timeZone"))
    name = value.get("timeZone") or "UTC"
    return naive.replace(tzinfo=zone(name)).astimezone(UTC), windows_name(name)


def render(instant: dt.datetime, preference: str) -> dict[str, str]:
    """An instant in the client's preferred zone, written as Graph writes it."""
    try:
        local = instant.astimezone(zone(preference))
        name = preference
    except Exception:   # an unusable preference: Graph falls back to UTC
        local, name = instant.astimezone(UTC), "UTC"
    return {"dateTime": local.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
            "timeZone": name}


def parse_window(query: dict[str, str]) -> tuple[dt.datetime, dt.datetime]:
    """startDateTime/endDateTime of calendarView and instances (offset or UTC)."""
    from ..timeutil import parse_dt

    start = parse_dt(query.get("startDateTime") or query.get("startdatetime"))
    end = parse_dt(query.get("endDateTime") or query.get("enddatetime"))
    if start is None or end is None:
        raise bad_request("This request requires a time window specified by the query "
                          "string parameters StartDateTime and EndDateTime.",
                          "ErrorInvalidParameter")
    if end <= start:
        raise bad_request("The end of the time window must be after its start.",
                          "ErrorInvalidParameter")
    return start, end
