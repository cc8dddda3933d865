"""What the sync needs of a record Raynet hands out, checked before it is mapped: a record
that lacks it (or holds what cannot be read) is one item's error, recorded against that
record while the run goes on, never the run's.

Values of enumerations the sync does not map (a phone's type, a meeting's priority or
status) are not looked at: an unknown one there changes nothing the sync writes.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from engine.crmstore.raynet_mapping import parse

# What each entity's record must hold for the sync to map it.
ACTIVITY_REQUIRED = ("id", "scheduledFrom", "scheduledTill")
REQUIRED = {"person": ("id",), "meeting": ACTIVITY_REQUIRED, "event": ACTIVITY_REQUIRED}
DATES = {"meeting": ("scheduledFrom", "scheduledTill"),
         "event": ("scheduledFrom", "scheduledTill")}
DATES_ANY = ("rowInfo.createdAt", "rowInfo.updatedAt")


def malformed(entity: str, data: Any) -> str:
    """Why the record cannot be synced, in words; "" if it can."""
    if not isinstance(data, dict):
        return gettext("Raynet answered with no record.")
    missing = [name for name in REQUIRED.get(entity, ()) if data.get(name) in (None, "")]
    if missing:
        return gettext("Raynet's record lacks %(fields)s; it is synced once it has them.") % {
            "fields": ", ".join(missing)}
    for name in (*DATES.get(entity, ()), *DATES_ANY):
        try:
            parse(data.get(name))
        except (TypeError, ValueError):
            return gettext("Raynet's record holds an unreadable date in %(field)s: "
                           "%(value)s.") % {"field": name, "value": data.get(name)}
    if entity in ("meeting", "event") and not isinstance(data.get("personal", False), bool | None):
        return gettext("Raynet's record holds an unknown value in %(field)s: %(value)s.") % {
            "field": "personal", "value": data.get("personal")}
    return ""
