"""The records the sync engine compares: plain data, free of Exchange and of Django.

A mailbox backend turns its items into these records and back; the CRM backend does the same
for CRM rows; the planner only ever sees records. `content_hash()` is what a link row keeps per
side, so that a new version with the same content is not a change (ARCHITECTURE §3).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


class Kind(enum.StrEnum):
    """What a folder holds, and so which record type its items become."""

    CONTACTS = "contacts"
    CALENDAR = "calendar"
    MAIL = "mail"


@dataclass(frozen=True)
class PostalAddress:
    street: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""

    def __bool__(self) -> bool:
        # Asked for every address of every contact: astuple() copied each value deeply
        # and cost a first import of 10,000 contacts about 1% of its time (bench/).
        return bool(self.street or self.city or self.region or self.postal_code
                    or self.country)


@dataclass
class ContactRecord:
    """A person's card: the synced fields of PRODUCT.md §4.2."""

    title: str = ""
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    suffix: str = ""
    display_name: str = ""
    company: str = ""
    job_title: str = ""
    department: str = ""
    web_page: str = ""
    email1: str = ""
    email2: str = ""
    email3: str = ""
    business_address: PostalAddress = field(default_factory=PostalAddress)
    home_address: PostalAddress = field(default_factory=PostalAddress)
    other_address: PostalAddress = field(default_factory=PostalAddress)
    phone_business: str = ""
    phone_business2: str = ""
    phone_home: str = ""
    phone_mobile: str = ""
    phone_business_fax: str = ""
    phone_other: str = ""
    note: str = ""
    categories: tuple[str, ...] = ()
    # An opaque token that changes when the photo changes (the photo's bytes are read apart).
    photo_token: str = ""
    stamp: str = ""            # the CRM key stamped on the item (identity, not content)
    modified: dt.datetime | None = None   # when the source last changed it (not content)

    @property
    def emails(self) -> list[str]:
        return [e.lower() for e in (self.email1, self.email2, self.email3) if e]

    def shown_name(self) -> str:
        if self.display_name:
            return self.display_name
        name = " ".join(p for p in (self.first_name, self.middle_name, self.last_name) if p)
        return name or self.company or self.email1


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str = ""
    required: bool = True


@dataclass(frozen=True)
class RecurrenceRule:
    """A series' pattern and range, in the terms both Exchange and iCalendar share.

    `pattern` is one of daily, weekly, absolute_monthly (day N of the month), relative_monthly
    (the first Monday…), absolute_yearly, relative_yearly. Weekdays are English day names as
    Exchange spells them; `week_index` is First, Second, Third, Fourth or Last.
    """

    pattern: str
    interval: int = 1
    weekdays: tuple[str, ...] = ()
    day_of_month: int | None = None
    month: int | None = None
    week_index: str | None = None
    first_day_of_week: str = "Monday"
    start: dt.date | None = None
    end: dt.date | None = None        # the last day, or None
    count: int | None = None          # the number of occurrences, or None


@dataclass
class EventRecord:
    """A single event, a series master (with its exceptions), or one occurrence of a series."""

    subject: str = ""
    start: dt.datetime | None = None     # aware, UTC
    end: dt.datetime | None = None
    time_zone: str = ""                  # IANA name of the zone the event was made in
    all_day: bool = False
    location: str = ""
    body: str = ""
    private: bool = False
    categories: tuple[str, ...] = ()
    attendees: tuple[Attendee, ...] = ()
    organizer: str = ""
    # The mailbox's own part in a meeting, as Exchange tells it: "organizer" (also a plain
    # appointment of its own), "accepted", "tentative", "declined", "none" (not answered);
    # "" when not told. Read only, never synced: it decides what deleting the copy means.
    response: str = ""
    cancelled: bool = False              # the organizer cancelled the meeting
    uid: str = ""
    recurrence: RecurrenceRule | None = None
    # Exceptions: changed occurrences, each an EventRecord with `original_start` set.
    exceptions: list[EventRecord] = field(default_factory=list)
    deleted_occurrences: tuple[dt.datetime, ...] = ()
    original_start: dt.datetime | None = None
    kind: str = "single"                 # single | master | occurrence | exception
    # A zone the server named that we could not map: reported, never silently shifted.
    time_zone_problem: str = ""
    stamp: str = ""
    modified: dt.datetime | None = None

    @property
    def organizes(self) -> bool | None:
        """Whether this copy is the organizer's (None: Exchange did not say)."""
        return self.response == "organizer" if self.response else None


# What an exception of a series holds of its own; the rest comes from its series.
EXCEPTION_FIELDS = ("subject", "start", "end", "all_day", "location", "body", "private",
                    "original_start")


def exception_view(record: EventRecord) -> EventRecord:
    """An exception as both sides describe it: only what an occurrence can change."""
    return EventRecord(**{name: getattr(record, name) for name in EXCEPTION_FIELDS},
                       kind="exception")


@dataclass(frozen=True)
class AttachmentInfo:
    ref: str                  # opaque: the backend opens it by this
    name: str
    content_type: str = ""
    size: int = 0
    is_inline: bool = False
    is_item: bool = False     # an attached e-mail or other item (saved as .eml)


@dataclass(frozen=True)
class Address:
    email: str
    name: str = ""


@dataclass
class MessageRecord:
    message_id: str = ""
    subject: str = ""
    sender: Address | None = None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    sent: dt.datetime | None = None
    received: dt.datetime | None = None
    body_text: str = ""
    body_html: str = ""
    categories: tuple[str, ...] = ()
    attachments: tuple[AttachmentInfo, ...] = ()
    stamp: str = ""

    def addresses(self) -> list[str]:
        """Every address on the e-mail, lower-cased, sender first, without repeats."""
        seen: dict[str, None] = {}
        for address in (self.sender, *self.to, *self.cc, *self.bcc):
            if address is not None and address.email:
                seen.setdefault(address.email.lower(), None)
        return list(seen)


Record = ContactRecord | EventRecord | MessageRecord

# Fields that identify a record rather than describe it: kept out of the content hash.
IDENTITY_FIELDS = frozenset({"stamp", "kind", "time_zone_problem", "modified"})


# Values _plain returns as they are: most fields of a record. Checked first, since hashing
# every record of a first sync walks some forty values each.
_SCALARS = (str, int, float, type(None))
_HASHED_FIELDS: dict[type, tuple[str, ...]] = {}


def _hashed_fields(cls: type) -> tuple[str, ...]:
    names = _HASHED_FIELDS.get(cls)
    if names is None:
        names = _HASHED_FIELDS[cls] = tuple(
            f.name for f in dataclasses.fields(cls) if f.name not in IDENTITY_FIELDS)
    return names


def _plain(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    cls = type(value)
    if dataclasses.is_dataclass(cls):
        return {name: _plain(getattr(value, name)) for name in _hashed_fields(cls)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def canonical(record: Record) -> dict[str, Any]:
    """The record as JSON-ready data: what the content hash covers."""
    return _plain(record)


def data_hash(data: dict[str, Any]) -> str:
    """sha256 over canonical data, stable across runs and machines."""
    encoded = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def content_hash(record: Record, fields: frozenset[str] | None = None) -> str:
    """The hash of a record's canonical content (optionally only some fields)."""
    data = canonical(record)
    if fields is not None:
        data = {k: v for k, v in data.items() if k in fields}
    return data_hash(data)
