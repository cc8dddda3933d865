"""Records <-> Microsoft Graph JSON (v1.0 contact, event and message resources): pure functions.

The Graph backend (`graph.py`) returns the same neutral records as the EWS backend, so that the
engine cannot tell them apart. What Graph has no property for travels as single-value extended
properties (MAPI), read and written under the same names Outlook and EWS use:
- the identity stamp: the product's own named property (the same set and name the EWS backend
  stamps, so an item stamped through one backend is found through the other);
- a contact's title ("Ing.", "Dr.": MAPI's display name prefix, 0x3A45, as EWS writes it;
  Graph's own `title` is not stored by every server), business fax and "other" telephone
  number (0x3A24, 0x3A1F).

Graph keeps a contact's e-mail addresses and business phones as plain lists, without EWS's
numbered slots: an address in slot 2 with slot 1 empty reads back in slot 1.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import zoneinfo
from collections.abc import Iterable
from typing import Any

from engine.mailbox.graph_recurrence import iana_zone, recurrence_json, recurrence_rule
from engine.mailbox.stamps import STAMP_PROPERTY_NAME, STAMP_PROPERTY_SET
from engine.records import (
    Address,
    AttachmentInfo,
    Attendee,
    ContactRecord,
    EventRecord,
    MessageRecord,
    PostalAddress,
)

# --- extended properties ----------------------------------------------------------------------
STAMP_PROPERTY = f"String {{{STAMP_PROPERTY_SET}}} Name {STAMP_PROPERTY_NAME}"
TITLE_PROPERTY = "String 0x3A45"
BUSINESS_FAX_PROPERTY = "String 0x3A24"
OTHER_PHONE_PROPERTY = "String 0x3A1F"
# PidLidHasPicture: Outlook's flag that a contact has a photo (the photo is read apart).
HAS_PICTURE_PROPERTY = "Boolean {00062004-0000-0000-C000-000000000046} Id 0x8015"

CONTACT_PROPERTIES = (STAMP_PROPERTY, TITLE_PROPERTY, BUSINESS_FAX_PROPERTY, OTHER_PHONE_PROPERTY,
                      HAS_PICTURE_PROPERTY)
ITEM_PROPERTIES = (STAMP_PROPERTY,)


def expand_properties(ids: Iterable[str]) -> str:
    """The `$expand` that brings these extended properties along with an item."""
    condition = " or ".join(f"id eq '{i}'" for i in ids)
    return f"singleValueExtendedProperties($filter={condition})"


def stamp_filter(stamp: str) -> str:
    """The `$filter` finding the items that carry `stamp`."""
    value = stamp.replace("'", "''")
    return (f"singleValueExtendedProperties/any(ep: ep/id eq '{STAMP_PROPERTY}' "
            f"and ep/value eq '{value}')")


def properties_of(item: dict[str, Any]) -> dict[str, str]:
    """An item's extended properties by id. Graph answers ids in its own spelling (the
    property set's GUID in another case, hex digits of a tag in another case), so the ids
    are compared case-insensitively."""
    return {str(p.get("id", "")).lower(): str(p.get("value") or "")
            for p in item.get("singleValueExtendedProperties") or []}


def _property(props: dict[str, str], prop_id: str) -> str:
    return props.get(prop_id.lower(), "")


def _extended(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"id": prop_id, "value": value} for prop_id, value in values.items()]


# --- shared helpers -----------------------------------------------------------------------------
_TAG = re.compile(r"<[^>]+>")
_HEAD = re.compile(r"(?is)<(head|style|script)\b.*?</\1\s*>")


def html_to_text(value: str) -> str:
    """Plain text of an HTML body, as the EWS backend reads Outlook's HTML notes."""
    if not value:
        return ""
    if not value.lstrip().startswith("<"):
        return value.replace("\r\n", "\n")
    value = _HEAD.sub("", value)
    value = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", value)
    value = html.unescape(_TAG.sub("", value))
    return "\n".join(line.rstrip() for line in value.splitlines()).strip()


def body_text(body: dict[str, Any] | None) -> str:
    if not body:
        return ""
    content = str(body.get("content") or "")
    if str(body.get("contentType", "")).lower() == "html":
        return html_to_text(content)
    return content.replace("\r\n", "\n")


def parse_time(value: str | None) -> dt.datetime | None:
    """Graph's timestamps: "2030-03-05T09:00:00Z", or seven-digit fractions without a zone."""
    if not value:
        return None
    text = value.strip().rstrip("Z")
    if "." in text:
        head, _, fraction = text.partition(".")
        digits = "".join(ch for ch in fraction if ch.isdigit())[:6]
        text = f"{head}.{digits}" if digits else head
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _email(address: str, name: str) -> dict[str, str]:
    return {"address": address, "name": name} if name else {"address": address}


# --- contacts ---------------------------------------------------------------------------------
CONTACT_SELECT = ("id,changeKey,givenName,middleName,surname,generation,displayName,"
                  "companyName,jobTitle,department,businessHomePage,emailAddresses,"
                  "businessPhones,homePhones,mobilePhone,businessAddress,homeAddress,"
                  "otherAddress,personalNotes,categories,lastModifiedDateTime,fileAs")
ADDRESS_KEYS = {"business_address": "businessAddress", "home_address": "homeAddress",
                "other_address": "otherAddress"}


def _postal(value: dict[str, Any] | None) -> PostalAddress:
    value = value or {}
    return PostalAddress(str(value.get("street") or ""), str(value.get("city") or ""),
                         str(value.get("state") or ""), str(value.get("postalCode") or ""),
                         str(value.get("countryOrRegion") or ""))


def _postal_json(address: PostalAddress) -> dict[str, str]:
    return {"street": address.street, "city": address.city, "state": address.region,
            "postalCode": address.postal_code, "countryOrRegion": address.country}


def _slot(values: list[Any], index: int) -> str:
    return str(values[index]) if len(values) > index and values[index] else ""


def contact_record(item: dict[str, Any], photo_token: str = "") -> ContactRecord:
    props = properties_of(item)
    emails = [str(e.get("address") or "") for e in item.get("emailAddresses") or []
              if e.get("address")]
    business = [p for p in item.get("businessPhones") or [] if p]
    home = [p for p in item.get("homePhones") or [] if p]
    return ContactRecord(
        title=_property(props, TITLE_PROPERTY), first_name=item.get("givenName") or "",
        middle_name=item.get("middleName") or "", last_name=item.get("surname") or "",
        suffix=item.get("generation") or "", display_name=item.get("displayName") or "",
        company=item.get("companyName") or "", job_title=item.get("jobTitle") or "",
        department=item.get("department") or "", web_page=item.get("businessHomePage") or "",
        email1=_slot(emails, 0), email2=_slot(emails, 1), email3=_slot(emails, 2),
        **{field: _postal(item.get(key)) for field, key in ADDRESS_KEYS.items()},
        phone_business=_slot(business, 0), phone_business2=_slot(business, 1),
        phone_home=_slot(home, 0), phone_mobile=item.get("mobilePhone") or "",
        phone_business_fax=_property(props, BUSINESS_FAX_PROPERTY),
        phone_other=_property(props, OTHER_PHONE_PROPERTY),
        note=(item.get("personalNotes") or "").replace("\r\n", "\n"),
        categories=tuple(item.get("categories") or ()), photo_token=photo_token,
        stamp=_property(props, STAMP_PROPERTY),
        modified=parse_time(item.get("lastModifiedDateTime")))


def has_picture(item: dict[str, Any]) -> bool:
    return _property(properties_of(item), HAS_PICTURE_PROPERTY).lower() == "true"


# record field -> the Graph properties that carry it (an update sends only these)
CONTACT_KEYS: dict[str, tuple[str, ...]] = {
    "title": (TITLE_PROPERTY,), "first_name": ("givenName", "fileAs"),
    "middle_name": ("middleName",), "last_name": ("surname", "fileAs"),
    "suffix": ("generation",), "display_name": ("displayName",), "company": ("companyName",),
    "job_title": ("jobTitle",), "department": ("department",), "web_page": ("businessHomePage",),
    "email1": ("emailAddresses",), "email2": ("emailAddresses",), "email3": ("emailAddresses",),
    "business_address": ("businessAddress",), "home_address": ("homeAddress",),
    "other_address": ("otherAddress",), "phone_business": ("businessPhones",),
    "phone_business2": ("businessPhones",), "phone_home": ("homePhones",),
    "phone_mobile": ("mobilePhone",), "note": ("personalNotes",), "categories": ("categories",),
    "phone_business_fax": (BUSINESS_FAX_PROPERTY,), "phone_other": (OTHER_PHONE_PROPERTY,),
    "stamp": (STAMP_PROPERTY,),
}


def contact_json(record: ContactRecord, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The Graph contact for `record`; with `fields`, only what carries those record fields."""
    body: dict[str, Any] = {
        "givenName": record.first_name, "middleName": record.middle_name,
        "surname": record.last_name, "generation": record.suffix,
        "displayName": record.shown_name() or "(no name)", "companyName": record.company,
        "jobTitle": record.job_title, "department": record.department,
        "businessHomePage": record.web_page,
        "emailAddresses": [{"address": e, "name": e}
                           for e in (record.email1, record.email2, record.email3) if e],
        **{key: _postal_json(getattr(record, field)) for field, key in ADDRESS_KEYS.items()},
        "businessPhones": [p for p in (record.phone_business, record.phone_business2) if p],
        "homePhones": [record.phone_home] if record.phone_home else [],
        "mobilePhone": record.phone_mobile, "personalNotes": record.note,
        "categories": list(record.categories),
        "fileAs": ", ".join(p for p in (record.last_name, record.first_name) if p),
    }
    props = {TITLE_PROPERTY: record.title, BUSINESS_FAX_PROPERTY: record.phone_business_fax,
             OTHER_PHONE_PROPERTY: record.phone_other, STAMP_PROPERTY: record.stamp}
    if fields is not None:
        wanted = {key for f in fields for key in CONTACT_KEYS.get(f, ())}
        body = {k: v for k, v in body.items() if k in wanted}
        props = {k: v for k, v in props.items() if k in wanted}
    else:
        props = {k: v for k, v in props.items() if v}
    if props:
        body["singleValueExtendedProperties"] = _extended(props)
    return body


# --- events ---------------------------------------------------------------------------------
EVENT_SELECT = ("id,changeKey,subject,start,end,isAllDay,location,body,sensitivity,categories,"
                "attendees,organizer,isOrganizer,responseStatus,isCancelled,iCalUId,recurrence,"
                "originalStart,originalStartTimeZone,type,seriesMasterId,lastModifiedDateTime")
# responseStatus: the mailbox's own answer to the meeting (records.EventRecord.response).
RESPONSES = {"organizer": "organizer", "accepted": "accepted",
             "tentativelyAccepted": "tentative", "declined": "declined", "none": "none",
             "notResponded": "none"}
EVENT_KINDS = {"singleInstance": "single", "seriesMaster": "master", "occurrence": "occurrence",
               "exception": "exception"}


def _event_time(value: dict[str, Any] | None, all_day: bool,
                zone: zoneinfo.ZoneInfo | None) -> dt.datetime | None:
    if not value or not value.get("dateTime"):
        return None
    stated = str(value.get("timeZone") or "UTC")
    local = dt.datetime.fromisoformat(str(value["dateTime"]).split(".")[0])
    if all_day and zone is not None and local.time() == dt.time():
        # An all-day event is a day on the wall clock: midnight in its own zone.
        return local.replace(tzinfo=zone).astimezone(dt.UTC)
    given = iana_zone(stated) or dt.UTC
    return local.replace(tzinfo=given).astimezone(dt.UTC)


def event_record(item: dict[str, Any], home_zone: str = "") -> EventRecord:
    props = properties_of(item)
    zone_name = str(item.get("originalStartTimeZone") or "")
    zone = iana_zone(zone_name, home_zone)
    problem = f"unknown time zone {zone_name!r}" if zone_name and zone is None else ""
    all_day = bool(item.get("isAllDay"))
    attendees = tuple(
        Attendee(str(a["emailAddress"]["address"]).lower(), a["emailAddress"].get("name") or "",
                 str(a.get("type", "required")).lower() != "optional")
        for a in item.get("attendees") or []
        if (a.get("emailAddress") or {}).get("address")
        and str(a.get("type", "")).lower() != "resource")
    organizer = ((item.get("organizer") or {}).get("emailAddress") or {}).get("address") or ""
    response = "organizer" if item.get("isOrganizer") else RESPONSES.get(
        str((item.get("responseStatus") or {}).get("response") or ""), "")
    return EventRecord(
        subject=item.get("subject") or "", start=_event_time(item.get("start"), all_day, zone),
        end=_event_time(item.get("end"), all_day, zone),
        time_zone=zone.key if zone is not None else "", all_day=all_day,
        location=(item.get("location") or {}).get("displayName") or "",
        body=body_text(item.get("body")),
        private=str(item.get("sensitivity", "")).lower() in ("private", "confidential"),
        categories=tuple(item.get("categories") or ()), attendees=attendees,
        organizer=organizer.lower(), response=response,
        cancelled=bool(item.get("isCancelled")), uid=item.get("iCalUId") or "",
        recurrence=recurrence_rule(item.get("recurrence")),
        original_start=parse_time(item.get("originalStart")),
        kind=EVENT_KINDS.get(str(item.get("type") or "singleInstance"), "single"),
        time_zone_problem=problem, stamp=_property(props, STAMP_PROPERTY),
        modified=parse_time(item.get("lastModifiedDateTime")))


def _local_json(value: dt.datetime, zone: zoneinfo.ZoneInfo, name: str,
                all_day: bool) -> dict[str, str]:
    local = value.astimezone(zone).replace(microsecond=0)
    if all_day:
        local = local.replace(hour=0, minute=0, second=0)
    return {"dateTime": local.replace(tzinfo=None).isoformat(), "timeZone": name}


EVENT_KEYS: dict[str, tuple[str, ...]] = {
    "subject": ("subject",), "start": ("start", "end"), "end": ("start", "end"),
    "time_zone": ("start", "end"), "all_day": ("isAllDay", "start", "end"),
    "location": ("location",), "body": ("body",), "private": ("sensitivity",),
    "categories": ("categories",), "attendees": ("attendees",), "recurrence": ("recurrence",),
    "stamp": (STAMP_PROPERTY,),
}


def event_json(record: EventRecord, default_zone: str,
               fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The Graph event for `record` (times on the wall clock of its zone, as Outlook keeps
    them); with `fields`, only what carries those record fields. Raises ValueError for a
    record no calendar can hold."""
    if record.start is None or record.end is None:
        raise ValueError("an event needs a start and an end")
    if record.end < record.start:
        raise ValueError("the event ends before it starts")
    name = record.time_zone or default_zone
    zone = iana_zone(name)
    if zone is None:
        raise ValueError(f"unknown time zone {name!r}")
    body: dict[str, Any] = {
        "subject": record.subject,
        "start": _local_json(record.start, zone, name, record.all_day),
        "end": _local_json(record.end, zone, name, record.all_day),
        "isAllDay": record.all_day, "location": {"displayName": record.location},
        "body": {"contentType": "text", "content": record.body},
        "sensitivity": "private" if record.private else "normal",
        "categories": list(record.categories),
        "attendees": [{"emailAddress": _email(a.email, a.name),
                       "type": "required" if a.required else "optional"}
                      for a in record.attendees],
        "recurrence": recurrence_json(record.recurrence, name) if record.recurrence else None,
    }
    props = {STAMP_PROPERTY: record.stamp}
    if fields is not None:
        wanted = {key for f in fields for key in EVENT_KEYS.get(f, ())}
        body = {k: v for k, v in body.items() if k in wanted}
        props = {k: v for k, v in props.items() if k in wanted}
    else:
        if body["recurrence"] is None:
            del body["recurrence"]
        props = {k: v for k, v in props.items() if v}
    if props:
        body["singleValueExtendedProperties"] = _extended(props)
    return body


EXCEPTION_KEYS = ("subject", "start", "end", "isAllDay", "location", "body", "sensitivity")


def exception_json(exception: EventRecord, default_zone: str, series_zone: str) -> dict[str, Any]:
    """What an occurrence is patched with to become the record's exception."""
    import dataclasses

    own = dataclasses.replace(exception, time_zone=exception.time_zone or series_zone,
                              recurrence=None, attendees=(), categories=())
    full = event_json(own, default_zone)
    return {k: full[k] for k in EXCEPTION_KEYS}


# --- messages -------------------------------------------------------------------------------
MESSAGE_SELECT = ("id,changeKey,internetMessageId,subject,from,sender,toRecipients,"
                  "ccRecipients,bccRecipients,sentDateTime,receivedDateTime,body,categories,"
                  "hasAttachments")
ATTACHMENT_SELECT = "id,name,contentType,size,isInline"
ITEM_ATTACHMENT = "#microsoft.graph.itemAttachment"


def _address(value: dict[str, Any] | None) -> Address | None:
    email = ((value or {}).get("emailAddress") or {})
    if not email.get("address"):
        return None
    return Address(str(email["address"]).lower(), email.get("name") or "")


def _addresses(values: list[dict[str, Any]] | None) -> tuple[Address, ...]:
    return tuple(a for a in (_address(v) for v in values or []) if a is not None)


def attachment_info(value: dict[str, Any]) -> AttachmentInfo:
    return AttachmentInfo(
        ref=str(value["id"]), name=value.get("name") or "",
        content_type=value.get("contentType") or "", size=int(value.get("size") or 0),
        is_inline=bool(value.get("isInline")),
        is_item=value.get("@odata.type") == ITEM_ATTACHMENT)


def message_record(item: dict[str, Any]) -> MessageRecord:
    props = properties_of(item)
    body = item.get("body") or {}
    is_html = str(body.get("contentType", "")).lower() == "html"
    return MessageRecord(
        message_id=item.get("internetMessageId") or "", subject=item.get("subject") or "",
        sender=_address(item.get("from")) or _address(item.get("sender")),
        to=_addresses(item.get("toRecipients")), cc=_addresses(item.get("ccRecipients")),
        bcc=_addresses(item.get("bccRecipients")), sent=parse_time(item.get("sentDateTime")),
        received=parse_time(item.get("receivedDateTime")), body_text=body_text(body),
        body_html=str(body.get("content") or "") if is_html else "",
        categories=tuple(item.get("categories") or ()),
        attachments=tuple(attachment_info(a) for a in item.get("attachments") or []),
        stamp=_property(props, STAMP_PROPERTY))


MESSAGE_KEYS: dict[str, tuple[str, ...]] = {
    "subject": ("subject",), "categories": ("categories",), "stamp": (STAMP_PROPERTY,)}


def message_json(record: MessageRecord, fields: Iterable[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": record.subject, "body": {"contentType": "text", "content": record.body_text},
        "categories": list(record.categories),
        "toRecipients": [{"emailAddress": _email(a.email, a.name)} for a in record.to],
    }
    props = {STAMP_PROPERTY: record.stamp}
    if fields is not None:
        wanted = {key for f in fields for key in MESSAGE_KEYS.get(f, ())}
        body = {k: v for k, v in body.items() if k in wanted}
        props = {k: v for k, v in props.items() if k in wanted}
    else:
        props = {k: v for k, v in props.items() if v}
    if props:
        body["singleValueExtendedProperties"] = _extended(props)
    return body
