"""Exchange items <-> records: the fields read, item -> record, record -> item fields."""

from __future__ import annotations

import datetime as dt
import html
import re
import warnings
import zoneinfo
from collections.abc import Sequence
from typing import Any

from exchangelib import Attendee as ExchangeAttendee
from exchangelib import (
    CalendarItem,
    Contact,
    EWSDate,
    EWSDateTime,
    EWSTimeZone,
    FileAttachment,
    ItemAttachment,
    Message,
)
from exchangelib import Mailbox as ExchangeMailbox
from exchangelib.fields import FieldPath
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)

# The field lists name the extended properties registered there.
from engine.mailbox import ews_properties  # noqa: F401
from engine.records import (
    Address,
    AttachmentInfo,
    Attendee,
    ContactRecord,
    EventRecord,
    Kind,
    MessageRecord,
    PostalAddress,
    Record,
    RecurrenceRule,
)

# An unknown Windows zone id is reported on the item (time_zone_problem), not as a warning in
# the worker's log for every read. Set once for the process: catch_warnings() per call is not
# thread-safe, and reads run in a background thread too (the read ahead of ews_reading).
warnings.filterwarnings("ignore", message="Cannot convert value", category=UserWarning)


# --- field lists: only what the records need -------------------------------------------------
CONTACT_FIELDS = ("title_prefix", "given_name", "middle_name", "surname", "generation",
                  "display_name", "company_name", "job_title", "department", "business_homepage",
                  "email_addresses", "phone_numbers", "physical_addresses", "body", "categories",
                  "attachments", "sync_stamp", "last_modified_time")
EVENT_FIELDS = ("subject", "start", "end", "is_all_day", "location", "body", "sensitivity",
                "categories", "required_attendees", "optional_attendees", "organizer",
                "my_response_type", "is_cancelled", "uid", "recurrence", "modified_occurrences",
                "deleted_occurrences", "original_start", "type", "_start_timezone", "sync_stamp",
                "last_modified_time", "duration")
MESSAGE_FIELDS = ("message_id", "subject", "author", "sender", "to_recipients", "cc_recipients",
                  "bcc_recipients", "datetime_sent", "datetime_received", "body", "text_body",
                  "categories", "attachments", "sync_stamp")
FIELDS = {Kind.CONTACTS: CONTACT_FIELDS, Kind.CALENDAR: EVENT_FIELDS, Kind.MAIL: MESSAGE_FIELDS}
ITEM_CLASS = {Kind.CONTACTS: Contact, Kind.CALENDAR: CalendarItem, Kind.MAIL: Message}
FOLDER_CLASS_KIND = {"IPF.Appointment": Kind.CALENDAR, "IPF.Contact": Kind.CONTACTS,
                     "IPF.Note": Kind.MAIL}
DISTINGUISHED = {"calendar", "contacts", "inbox", "sentitems", "drafts", "deleteditems",
                 "msgfolderroot", "root", "junkemail", "outbox"}

PHONES = {"phone_business": "BusinessPhone", "phone_business2": "BusinessPhone2",
          "phone_home": "HomePhone", "phone_mobile": "MobilePhone",
          "phone_business_fax": "BusinessFax", "phone_other": "OtherTelephone"}
ADDRESSES = {"business_address": "Business", "home_address": "Home", "other_address": "Other"}
EMAILS = {"email1": "EmailAddress1", "email2": "EmailAddress2", "email3": "EmailAddress3"}
# record field -> the exchangelib field that carries it
CONTACT_FIELD_MAP = {
    "title": "title_prefix", "first_name": "given_name", "middle_name": "middle_name",
    "last_name": "surname", "suffix": "generation", "display_name": "display_name",
    "company": "company_name", "job_title": "job_title", "department": "department",
    "web_page": "business_homepage", "note": "body", "categories": "categories",
    **dict.fromkeys(EMAILS, "email_addresses"), **dict.fromkeys(PHONES, "phone_numbers"),
    **dict.fromkeys(ADDRESSES, "physical_addresses"), "stamp": "sync_stamp",
}
EVENT_FIELD_MAP = {
    "subject": "subject", "start": "start", "end": "end", "time_zone": "start",
    "all_day": "is_all_day", "location": "location", "body": "body", "private": "sensitivity",
    "categories": "categories", "attendees": "required_attendees", "recurrence": "recurrence",
    "stamp": "sync_stamp",
}
MESSAGE_FIELD_MAP = {"subject": "subject", "categories": "categories", "stamp": "sync_stamp"}
FIELD_MAP = {Kind.CONTACTS: CONTACT_FIELD_MAP, Kind.CALENDAR: EVENT_FIELD_MAP,
             Kind.MAIL: MESSAGE_FIELD_MAP}


# --- item -> record -------------------------------------------------------------------------
_TAG = re.compile(r"<[^>]+>")


def _text(body: Any) -> str:
    """Plain text of a body: HTML bodies (Outlook keeps notes as HTML) lose their markup."""
    if not body:
        return ""
    value = str(body)
    if type(body).__name__ == "HTMLBody" or value.lstrip().startswith("<"):
        value = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", value)
        value = html.unescape(_TAG.sub("", value))
        value = "\n".join(line.rstrip() for line in value.splitlines()).strip()
    return value.replace("\r\n", "\n")


def as_utc(value: Any, zone: zoneinfo.ZoneInfo | None) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        # EWSDateTime.astimezone() takes only EWSTimeZones: go through the timestamp.
        return dt.datetime.fromtimestamp(value.timestamp(), dt.UTC)
    # All-day events come back as dates: midnight in the event's own zone.
    return dt.datetime.combine(value, dt.time(), zone or dt.UTC).astimezone(dt.UTC)


def _enum_name(names: Sequence[str], value: Any) -> str:
    return value if isinstance(value, str) else names[int(value) - 1]


WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
                 "Day", "Weekday", "WeekendDay")
WEEK_NUMBERS = ("First", "Second", "Third", "Fourth", "Last")


def _rule(recurrence: Recurrence | None) -> RecurrenceRule | None:
    if recurrence is None or recurrence.pattern is None:
        return None
    p, b = recurrence.pattern, recurrence.boundary
    start = getattr(b, "start", None)
    end = getattr(b, "end", None)
    common: dict[str, Any] = {
        "start": _plain_date(start), "end": _plain_date(end),
        "count": getattr(b, "number", None),
    }
    if isinstance(p, DailyPattern):
        return RecurrenceRule("daily", p.interval, **common)
    if isinstance(p, WeeklyPattern):
        days = p.weekdays if isinstance(p.weekdays, list | tuple) else [p.weekdays]
        return RecurrenceRule("weekly", p.interval,
                              weekdays=tuple(_enum_name(WEEKDAY_NAMES, d) for d in days),
                              first_day_of_week=_enum_name(WEEKDAY_NAMES, p.first_day_of_week or 1),
                              **common)
    if isinstance(p, AbsoluteMonthlyPattern):
        return RecurrenceRule("absolute_monthly", p.interval, day_of_month=p.day_of_month,
                              **common)
    if isinstance(p, RelativeMonthlyPattern):
        return RecurrenceRule("relative_monthly", p.interval,
                              weekdays=(_enum_name(WEEKDAY_NAMES, p.weekday),),
                              week_index=_enum_name(WEEK_NUMBERS, p.week_number), **common)
    if isinstance(p, AbsoluteYearlyPattern):
        return RecurrenceRule("absolute_yearly", 1, day_of_month=p.day_of_month,
                              month=_month(p.month), **common)
    if isinstance(p, RelativeYearlyPattern):
        return RecurrenceRule("relative_yearly", 1,
                              weekdays=(_enum_name(WEEKDAY_NAMES, p.weekday),),
                              week_index=_enum_name(WEEK_NUMBERS, p.week_number),
                              month=_month(p.month), **common)
    return None


def _plain_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return dt.date(value.year, value.month, value.day) if isinstance(value, dt.date) else None


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def _month(value: Any) -> int:
    return MONTHS.index(value) + 1 if isinstance(value, str) else int(value)


def _recurrence(rule: RecurrenceRule) -> Recurrence:
    pattern: Any
    if rule.pattern == "daily":
        pattern = DailyPattern(interval=rule.interval)
    elif rule.pattern == "weekly":
        pattern = WeeklyPattern(interval=rule.interval, weekdays=list(rule.weekdays),
                                first_day_of_week=rule.first_day_of_week)
    elif rule.pattern == "absolute_monthly":
        pattern = AbsoluteMonthlyPattern(interval=rule.interval, day_of_month=rule.day_of_month)
    elif rule.pattern == "relative_monthly":
        pattern = RelativeMonthlyPattern(interval=rule.interval, weekday=rule.weekdays[0],
                                         week_number=rule.week_index)
    elif rule.pattern == "absolute_yearly":
        pattern = AbsoluteYearlyPattern(day_of_month=rule.day_of_month,
                                        month=MONTHS[(rule.month or 1) - 1])
    elif rule.pattern == "relative_yearly":
        pattern = RelativeYearlyPattern(weekday=rule.weekdays[0], week_number=rule.week_index,
                                        month=MONTHS[(rule.month or 1) - 1])
    else:
        raise ValueError(f"unknown recurrence pattern {rule.pattern!r}")
    start = EWSDate.from_date(rule.start) if rule.start else None
    boundary: Any
    if rule.count:
        boundary = NumberedPattern(start=start, number=rule.count)
    elif rule.end:
        boundary = EndDatePattern(start=start, end=EWSDate.from_date(rule.end))
    else:
        boundary = NoEndPattern(start=start)
    return Recurrence(pattern=pattern, boundary=boundary)


def contact_record(item: Contact) -> ContactRecord:
    emails = {e.label: e.email for e in item.email_addresses or [] if e.email}
    phones = {p.label: p.phone_number for p in item.phone_numbers or [] if p.phone_number}
    addresses = {a.label: PostalAddress(a.street or "", a.city or "", a.state or "",
                                        a.zipcode or "", a.country or "")
                 for a in item.physical_addresses or []}
    photo = next((a.attachment_id.id for a in item.attachments or []
                  if isinstance(a, FileAttachment) and a.is_contact_photo), "")
    return ContactRecord(
        title=item.title_prefix or "", first_name=item.given_name or "",
        middle_name=item.middle_name or "", last_name=item.surname or "",
        suffix=item.generation or "", display_name=item.display_name or "",
        company=item.company_name or "", job_title=item.job_title or "",
        department=item.department or "", web_page=item.business_homepage or "",
        **{field: emails.get(label, "") for field, label in EMAILS.items()},
        **{field: addresses.get(label, PostalAddress()) for field, label in ADDRESSES.items()},
        **{field: phones.get(label, "") for field, label in PHONES.items()},
        note=_text(item.body), categories=tuple(item.categories or ()), photo_token=photo,
        stamp=item.sync_stamp or "", modified=as_utc(item.last_modified_time, None))


def _attendees(item: CalendarItem) -> tuple[Attendee, ...]:
    out = []
    for required, group in ((True, item.required_attendees), (False, item.optional_attendees)):
        for attendee in group or []:
            mailbox = attendee.mailbox
            if mailbox is not None and mailbox.email_address:
                out.append(Attendee(mailbox.email_address.lower(), mailbox.name or "", required))
    return tuple(out)


# MyResponseType: the mailbox's own answer to the meeting (records.EventRecord.response).
RESPONSES = {"Organizer": "organizer", "Accept": "accepted", "Tentative": "tentative",
             "Decline": "declined", "NoResponseReceived": "none"}
KINDS_OF_EVENT = {"Single": "single", "RecurringMaster": "master", "Occurrence": "occurrence",
                  "Exception": "exception"}


# xs:duration as Exchange writes an elapsed time (days at most; zero years/months tolerated).
DURATION = re.compile(
    r"P(?:0+Y)?(?:0+M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.\d+)?S)?)?")


def _end(item: CalendarItem, start: dt.datetime | None,
         zone: zoneinfo.ZoneInfo | None) -> dt.datetime | None:
    """The end instant. exchangelib reads an all-day event's end as its last day, one day
    early when that day is 23 hours long (it steps back 24 hours from the midnight after
    it); the record ends at that midnight, as Exchange keeps it (and as Graph and the CRM
    do), so it is the start plus the elapsed Duration the server gives."""
    end = item.end
    if not isinstance(end, dt.date) or isinstance(end, dt.datetime):
        return as_utc(end, zone)
    parts = DURATION.fullmatch(item.duration or "")
    if start is not None and parts and any(parts.groups()):
        days, hours, minutes, seconds = (int(p or 0) for p in parts.groups())
        return start + dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return as_utc(end + dt.timedelta(days=1), zone)


def event_record(item: CalendarItem, home_zone: str = "") -> EventRecord:
    zone = item._start_timezone
    zone_info: zoneinfo.ZoneInfo | None = None
    problem = ""
    if zone is not None:
        try:
            # Windows names one zone for several cities ("Central Europe Standard Time" is
            # Prague and Budapest); the user's own city reads better than the canonical one.
            same_as_home = home_zone and EWSTimeZone(home_zone).ms_id == zone.ms_id
            zone_info = zoneinfo.ZoneInfo(home_zone if same_as_home else zone.key)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problem = f"unknown time zone {zone.key!r}"
    elif item.start is not None:
        problem = "the server named a time zone that has no known equivalent; kept in UTC"
    start = as_utc(item.start, zone_info)
    return EventRecord(
        subject=item.subject or "", start=start, end=_end(item, start, zone_info),
        time_zone=zone_info.key if zone_info else "",
        all_day=bool(item.is_all_day), location=item.location or "", body=_text(item.body),
        private=item.sensitivity in ("Private", "Confidential"),
        categories=tuple(item.categories or ()), attendees=_attendees(item),
        organizer=(item.organizer.email_address or "").lower() if item.organizer else "",
        response=RESPONSES.get(item.my_response_type or "", ""),
        cancelled=bool(item.is_cancelled), uid=item.uid or "", recurrence=_rule(item.recurrence),
        deleted_occurrences=tuple(as_utc(d.start, None) for d in item.deleted_occurrences or []
                                  if d.start is not None),
        original_start=as_utc(item.original_start, None),
        kind=KINDS_OF_EVENT.get(item.type or "Single", "single"), time_zone_problem=problem,
        stamp=item.sync_stamp or "", modified=as_utc(item.last_modified_time, None))


def _address(mailbox: Any) -> Address | None:
    if mailbox is None or not mailbox.email_address:
        return None
    return Address(mailbox.email_address.lower(), mailbox.name or "")


def _addresses(mailboxes: Any) -> tuple[Address, ...]:
    return tuple(a for a in (_address(m) for m in mailboxes or []) if a is not None)


def message_record(item: Message) -> MessageRecord:
    body_html = str(item.body) if type(item.body).__name__ == "HTMLBody" else ""
    attachments = tuple(
        AttachmentInfo(ref=a.attachment_id.id, name=a.name or "", content_type=a.content_type or "",
                       size=a.size or 0, is_inline=bool(a.is_inline),
                       is_item=isinstance(a, ItemAttachment))
        for a in item.attachments or [] if a.attachment_id is not None)
    return MessageRecord(
        message_id=item.message_id or "", subject=item.subject or "",
        sender=_address(item.author) or _address(item.sender), to=_addresses(item.to_recipients),
        cc=_addresses(item.cc_recipients), bcc=_addresses(item.bcc_recipients),
        sent=as_utc(item.datetime_sent, None), received=as_utc(item.datetime_received, None),
        # TextBody (Exchange 2013 and later) is text already, whatever it begins with.
        body_text=item.text_body.replace("\r\n", "\n") if item.text_body
        else _text(item.body),
        body_html=body_html, categories=tuple(item.categories or ()), attachments=attachments,
        stamp=item.sync_stamp or "")


def to_record(item: Any, home_zone: str = "") -> Record | None:
    if isinstance(item, Contact):
        return contact_record(item)
    if isinstance(item, CalendarItem):
        return event_record(item, home_zone)
    if isinstance(item, Message):
        return message_record(item)
    return None


# --- record -> item fields ------------------------------------------------------------------
def contact_values(record: ContactRecord) -> dict[str, Any]:
    return {
        "title_prefix": record.title or None, "given_name": record.first_name or None,
        "middle_name": record.middle_name or None, "surname": record.last_name or None,
        "generation": record.suffix or None,
        "display_name": record.shown_name() or "(no name)",
        "company_name": record.company or None, "job_title": record.job_title or None,
        "department": record.department or None, "business_homepage": record.web_page or None,
        "email_addresses": [EmailAddress(label=label, email=getattr(record, field))
                            for field, label in EMAILS.items() if getattr(record, field)] or None,
        "phone_numbers": [PhoneNumber(label=label, phone_number=getattr(record, field))
                          for field, label in PHONES.items() if getattr(record, field)] or None,
        "physical_addresses": [
            PhysicalAddress(label=label, street=a.street or None, city=a.city or None,
                            state=a.region or None, zipcode=a.postal_code or None,
                            country=a.country or None)
            for field, label in ADDRESSES.items() if (a := getattr(record, field))] or None,
        "body": record.note or None, "categories": list(record.categories) or None,
        "file_as": ", ".join(p for p in (record.last_name, record.first_name) if p) or None,
        "sync_stamp": record.stamp or None,
    }


def as_ews_utc(value: dt.datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(dt.UTC).replace(microsecond=0)
                                     ).astimezone(EWSTimeZone("UTC"))


def _local(value: dt.datetime, zone: EWSTimeZone) -> EWSDateTime:
    local = value.replace(microsecond=0).astimezone(zone)
    return local if isinstance(local, EWSDateTime) else EWSDateTime.from_datetime(local)


def _whole_days(start: EWSDateTime, end: EWSDateTime,
                zone: EWSTimeZone) -> tuple[EWSDateTime, EWSDateTime]:
    """An all-day event as Exchange keeps it: from the midnight of its first day to the
    midnight after its last, on its own zone's wall clock (23 or 25 hours over a DST change),
    and at least one day. Datetimes, not dates: exchangelib would put dates on the account's
    zone rather than the event's."""
    first = start.date()
    after = end.date() if end.time() == dt.time() else end.date() + dt.timedelta(days=1)
    after = max(after, first + dt.timedelta(days=1))
    return (EWSDateTime.combine(first, dt.time()).replace(tzinfo=zone),
            EWSDateTime.combine(after, dt.time()).replace(tzinfo=zone))


def event_values(record: EventRecord, default_zone: str) -> dict[str, Any]:
    zone = EWSTimeZone(record.time_zone or default_zone)
    if record.start is None or record.end is None:
        raise ValueError("an event needs a start and an end")
    if record.end < record.start:
        raise ValueError("the event ends before it starts")
    start: Any = _local(record.start, zone)
    end: Any = _local(record.end, zone)
    if record.all_day:
        start, end = _whole_days(start, end, zone)

    def attendee(a: Attendee) -> ExchangeAttendee:
        return ExchangeAttendee(mailbox=ExchangeMailbox(email_address=a.email, name=a.name or None),
                                response_type="Unknown")

    required = [attendee(a) for a in record.attendees if a.required]
    optional = [attendee(a) for a in record.attendees if not a.required]
    values: dict[str, Any] = {
        "subject": record.subject, "start": start, "end": end, "is_all_day": record.all_day,
        "location": record.location or None, "body": record.body or None,
        "sensitivity": "Private" if record.private else "Normal",
        "categories": list(record.categories) or None,
        "required_attendees": required or None, "optional_attendees": optional or None,
        "recurrence": _recurrence(record.recurrence) if record.recurrence else None,
        "sync_stamp": record.stamp or None,
    }
    if record.uid:
        values["uid"] = record.uid
    return values


def message_values(record: MessageRecord) -> dict[str, Any]:
    return {"subject": record.subject, "body": record.body_text or None,
            "categories": list(record.categories) or None, "sync_stamp": record.stamp or None,
            "to_recipients": [a.email for a in record.to] or None}


def field_paths(kind: Kind, fields: tuple[str, ...] | None = None) -> set[Any]:
    cls = ITEM_CLASS[kind]
    return {FieldPath(field=cls.get_field_by_fieldname(name))
            for name in (fields or FIELDS[kind])}
