"""Raynet records <-> the engine's records: a person (with its primary company) <-> a
ContactRecord, a meeting <-> an EventRecord.

What Raynet has no attribute for is listed in `UNMAPPED_CONTACT` and `UNMAPPED_EVENT` (and
in docs/raynet.md): those fields are neither written nor read, so they never sync to Raynet;
RaynetKind declares them as its unheld fields, which the engine leaves alone in Exchange.
Dates are exchanged in ISO 8601 (every request asks `dateFormat=ISO8601`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from engine.records import ContactRecord, EventRecord, PostalAddress

# ContactRecord field -> (Raynet attribute, nested attribute or "").
CONTACT_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "title": ("titleBefore", ""),
    "first_name": ("firstName", ""),
    "last_name": ("lastName", ""),
    "suffix": ("titleAfter", ""),
    "web_page": ("contactInfo", "www"),
    "email1": ("contactInfo", "email"),
    "email2": ("contactInfo", "email2"),
    "phone_mobile": ("contactInfo", "tel1"),
    "phone_business": ("contactInfo", "tel2"),
    "phone_business_fax": ("contactInfo", "fax"),
    "note": ("notice", ""),
}
# Raynet names its two phone numbers' kinds; these are the ones the sync writes.
PHONE_TYPES = {"tel1": "mobil", "tel2": "práce"}
ADDRESS_PARTS = {"street": "street", "city": "city", "region": "province",
                 "postal_code": "zipCode", "country": "country"}
# Held by the person's primary relationship to a company, not by the person.
RELATIONSHIP_FIELDS = frozenset({"company", "job_title"})
# A person in Raynet has one private address; the business address is its company's.
HOME_ADDRESS = "home_address"
UNMAPPED_CONTACT = frozenset({"middle_name", "department", "email3", "business_address",
                              "other_address", "phone_business2", "phone_home",
                              "phone_other"})

EVENT_ATTRIBUTES = {"subject": "title", "location": "meetingPlace", "body": "description",
                    "private": "personal"}
# A series' zone is kept with its rule; attendees, categories and series are written by
# raynet_calendar.py.
UNMAPPED_EVENT = frozenset({"time_zone", "all_day"})


# The CRM's users are persons too: they are its accounts, not contacts to sync. A contact is
# a person without a user account (no user account's id is 0).
CONTACTS_ONLY = {"userAccount-id[EQ_OR_NULL]": "0"}
# A person's relationship to a company needs a position; a card without a job title gets
# this one, read back as no job title.
NO_POSITION = "–"


# --- persons ----------------------------------------------------------------------------------
def person_body(record: ContactRecord, fields: frozenset[str]) -> dict[str, Any]:
    """The person's attributes for a create or an edit of `fields` (the relationship to its
    company is written apart)."""
    body: dict[str, Any] = {}
    for name in sorted(fields & CONTACT_ATTRIBUTES.keys()):
        attribute, nested = CONTACT_ATTRIBUTES[name]
        # Raynet takes no nulls: an emptied field is written as "".
        value = getattr(record, name)
        if nested:
            body.setdefault(attribute, {})[nested] = value
            if nested in PHONE_TYPES:
                body[attribute][f"{nested}Type"] = PHONE_TYPES[nested] if value else ""
        else:
            body[attribute] = value
    if HOME_ADDRESS in fields:
        address = record.home_address
        body["privateAddress"] = {raynet: getattr(address, part)
                                  for part, raynet in ADDRESS_PARTS.items()}
    return body


def person_record(data: dict[str, Any]) -> ContactRecord:
    record = ContactRecord()
    for name, (attribute, nested) in CONTACT_ATTRIBUTES.items():
        value = data.get(attribute)
        if nested:
            value = (value or {}).get(nested) if isinstance(value, dict) else None
        setattr(record, name, _text(value))
    address = data.get("privateAddress") or {}
    record.home_address = PostalAddress(**{part: _text(address.get(raynet))
                                           for part, raynet in ADDRESS_PARTS.items()})
    primary = data.get("primaryRelationship") or {}
    record.company = _text((primary.get("company") or {}).get("name"))
    position = _text(primary.get("type"))
    # The position the sync writes for a card without a job title is no job title: read as
    # such, it neither reaches Exchange nor looks like an edit made in Raynet.
    record.job_title = "" if position == NO_POSITION else position
    return record


def without_empty(body: dict[str, Any]) -> dict[str, Any]:
    """A create's body: what is empty is left out rather than written as ""."""
    kept: dict[str, Any] = {}
    for name, value in body.items():
        if isinstance(value, dict):
            value = without_empty(value)
        if value not in ("", None, {}):
            kept[name] = value
    return kept


# --- meetings ---------------------------------------------------------------------------------
def meeting_body(record: EventRecord, fields: frozenset[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in sorted(fields & EVENT_ATTRIBUTES.keys()):
        value = getattr(record, name)
        body[EVENT_ATTRIBUTES[name]] = value
    if "start" in fields and record.start is not None:
        body["scheduledFrom"] = iso(record.start)
    if "end" in fields and record.end is not None:
        body["scheduledTill"] = iso(record.end)
    return body


def event_record(data: dict[str, Any]) -> EventRecord:
    record = EventRecord()
    for name, attribute in EVENT_ATTRIBUTES.items():
        value = data.get(attribute)
        setattr(record, name, bool(value) if name == "private" else _text(value))
    record.start = parse(data.get("scheduledFrom"))
    record.end = parse(data.get("scheduledTill"))
    record.uid = next((e.removeprefix(UID_PREFIX) for e in data.get("extIds") or ()
                       if str(e).startswith(UID_PREFIX)), "")
    return record


UID_PREFIX = "uid:"


def valid_times(record: EventRecord) -> bool:
    return record.start is not None and record.end is not None and record.start <= record.end


# --- values ----------------------------------------------------------------------------------
def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse(value: Any) -> dt.datetime | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
