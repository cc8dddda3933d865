"""A CRM kept in memory: the smallest backend that keeps the whole CRM contract, and a kind of
CRM the test settings register ("memory"), so that the engine can be run end to end against a
CRM that is not the built-in store.

It proves `CrmBackend` is complete: the engine's side of every behaviour the contract asks
goes through the interface alone (only the test's own set-up, a classification node, and its
look at an event's participants and an e-mail's links go around it). It also gives tests a
CRM without a database.

A test backend: its data lives in this process's memory, one store per organization
(memory_store.py), and is lost when the process ends. The change cursor is the organization's
revision counter: every write takes the next revision, and a record's version is the revision
of its last write.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence

from engine.crmstore.base import CrmBackend, CrmChange, CrmRecord, CrmWrite, RecordSummary
from engine.matching import full_name, name_key
from engine.records import (
    IDENTITY_FIELDS,
    ContactRecord,
    EventRecord,
    Kind,
    PostalAddress,
    Record,
    exception_view,
)
from tests.engine.crmstore.memory_kind import MemoryKind
from tests.engine.crmstore.memory_mail import MemoryMail
from tests.engine.crmstore.memory_store import (
    Row,
    company_name_key,
    display_name,
    new_key,
    photo_token,
)

STAMP_PREFIX = "memory"
# Fields of a record that are not written: identity, and the photo (written by set_photo).
UNWRITTEN = IDENTITY_FIELDS | {"photo_token"}
# Attendees are kept as participants, not as a field.
EVENT_UNWRITTEN = UNWRITTEN | {"attendees"}
CURSOR_PREFIX = f"{STAMP_PREFIX}-revision:"
KEY_PREFIX = {Kind.CONTACTS: "person", Kind.CALENDAR: "event"}
NO_VALID_TIMES = "The event has no valid start and end."
MISSING = "The record no longer exists in the CRM."


def valid_times(record: EventRecord) -> bool:
    return record.start is not None and record.end is not None and record.start <= record.end


class MemoryCrm(MemoryKind, MemoryMail, CrmBackend):
    """The CRM of `organization` as a profile of the CRM user `user` sees it: every person
    of the organization; with `own_only`, only the user's; with `branch`, those of that
    classification node and its sub-nodes. The events in scope are the user's."""

    def __init__(self, organization: str, user: str, *, own_only: bool = False,
                 branch: str | None = None) -> None:
        self.organization = organization
        self.user = user
        self.own_only = own_only
        self.branch = branch

    def _rows(self, kind: Kind) -> dict[str, Row]:
        return self._store.rows[kind]

    # reading
    def current_cursor(self) -> str:
        revision = self._store.revision
        # Marked as this kind's, so that no other kind's cursor passes for one of its own.
        return f"{CURSOR_PREFIX}{revision}" if revision else ""

    def changes_since(self, kind: Kind, cursor: str) -> Iterator[CrmChange]:
        revision = _revision(cursor)
        changes = [c for c in self._store.journal[kind].values() if int(c.version) > revision]
        yield from sorted(changes, key=lambda c: int(c.version))

    def fetch(self, kind: Kind, keys: Sequence[str]) -> dict[str, CrmRecord]:
        found: dict[str, CrmRecord] = {}
        for key in keys:
            row = self._rows(kind).get(key)
            if row is None:
                continue
            record = copy.deepcopy(row.record)
            if isinstance(record, ContactRecord):
                record.photo_token = photo_token(row.photo)
            found[key] = CrmRecord(key, str(row.version), record, row.modified)
        return found

    def in_scope(self, kind: Kind, keys: Sequence[str]) -> set[str]:
        rows = self._rows(kind)
        return {key for key in keys if key in rows and self._sees(kind, rows[key])}

    def _sees(self, kind: Kind, row: Row) -> bool:
        if kind is Kind.CALENDAR:
            return row.owner == self.user
        if self.branch is not None:
            return bool(row.branches & self._store.branch(self.branch))
        return not self.own_only or row.owner == self.user

    def find_by_origin(self, kind: Kind, origins: Sequence[str]) -> dict[str, str]:
        wanted = {origin for origin in origins if origin}
        return {row.origin: key for key, row in self._rows(kind).items() if row.origin in wanted}

    def _persons(self) -> Iterator[tuple[str, ContactRecord]]:
        for key, row in self._rows(Kind.CONTACTS).items():
            if isinstance(row.record, ContactRecord):
                yield key, row.record

    def find_by_email(self, addresses: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {a.lower(): [] for a in addresses if a}
        for key, record in self._persons():
            for address in set(record.emails) & set(found):
                found[address].append(key)
        return found

    def find_by_name(self, keys: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {key: [] for key in keys if key}
        for key, record in self._persons():
            if not record.emails:
                name = name_key(full_name(record.first_name, record.middle_name,
                                          record.last_name), record.company)
                if name in found:
                    found[name].append(key)
        return found

    def find_or_create_company(self, name: str) -> str:
        wanted = company_name_key(name)
        if not wanted:
            raise ValueError("a company needs a name")
        companies = self._store.companies
        if wanted not in companies:
            companies[wanted] = (new_key("company"), name.strip())
        return companies[wanted][0]

    def _company_name(self, name: str) -> str:
        """The name of the company `name` matches, created if new ("" for none)."""
        if not name.strip():
            return ""
        self.find_or_create_company(name)
        return self._store.companies[company_name_key(name)][1]

    def persons_in_branch(self, node: str) -> Iterator[str]:
        nodes = self._store.branch(node)
        for key, row in self._rows(Kind.CONTACTS).items():
            if row.branches & nodes:
                yield key

    def read_photo(self, key: str) -> bytes | None:
        row = self._rows(Kind.CONTACTS).get(key)
        return row.photo if row is not None else None

    # writing
    def _written(self, kind: Kind, key: str, row: Row) -> CrmWrite:
        """Record a write of `row`: a new revision, which is its version now."""
        row.version = self._store.record_change(kind, key)
        row.modified = dt.datetime.now(dt.UTC)
        return CrmWrite(key, str(row.version))

    def _apply(self, row: Row, record: Record, fields: frozenset[str]) -> None:
        unwritten = EVENT_UNWRITTEN if isinstance(record, EventRecord) else UNWRITTEN
        known = {f.name for f in dataclasses.fields(row.record)}
        for name in (fields & known) - unwritten:
            setattr(row.record, name, copy.deepcopy(getattr(record, name)))
        if isinstance(row.record, ContactRecord) and "company" in fields:
            row.record.company = self._company_name(row.record.company)
        if isinstance(row.record, EventRecord):
            # Kept as both sides read a series: exceptions and deleted occurrences in order.
            row.record.exceptions = sorted(
                (exception_view(e) for e in row.record.exceptions),
                key=lambda e: e.original_start or e.start or dt.datetime.min)
            row.record.deleted_occurrences = tuple(sorted(row.record.deleted_occurrences))
            row.record.kind = "master" if row.record.recurrence else "single"
            if "attendees" in fields:
                row.participants = self._attending(record)

    def _attending(self, record: Record) -> set[str]:
        """The persons an event's attendees are."""
        addresses = {a.email.lower() for a in getattr(record, "attendees", ()) if a.email}
        return {key for key, person in self._persons() if addresses & set(person.emails)}

    def create(self, kind: Kind, record: Record, origin: str) -> CrmWrite:
        if isinstance(record, EventRecord) and not valid_times(record):
            return CrmWrite(error=NO_VALID_TIMES)
        key = new_key(KEY_PREFIX[kind])
        row = Row(type(record)(), 0, dt.datetime.now(dt.UTC), origin, self.user,
                  branches={self.branch} if self.branch is not None else set())
        self._apply(row, record, frozenset(f.name for f in dataclasses.fields(record)))
        self._rows(kind)[key] = row
        return self._written(kind, key, row)

    def update(self, kind: Kind, key: str, record: Record, fields: frozenset[str],
               version: str = "") -> CrmWrite:
        row = self._rows(kind).get(key)
        if row is None:
            return CrmWrite(key, error=MISSING)
        if version and version != str(row.version):
            return CrmWrite.changed_meanwhile(key)
        if isinstance(record, EventRecord) and not valid_times(record):
            return CrmWrite(key, error=NO_VALID_TIMES)
        self._apply(row, record, fields)
        return self._written(kind, key, row)

    def delete(self, kind: Kind, key: str) -> CrmWrite:
        if self._rows(kind).pop(key, None) is not None:
            self._store.record_change(kind, key, deleted=True)
        return CrmWrite(key)

    # reports
    def summaries(self, kind: Kind, keys: Sequence[str]) -> dict[str, RecordSummary]:
        if kind not in KEY_PREFIX:
            return {}
        found: dict[str, RecordSummary] = {}
        for key, crm in self.fetch(kind, keys).items():
            record = crm.record
            if isinstance(record, EventRecord):
                found[key] = RecordSummary(key, record.subject, dataclasses.replace(
                    record, exceptions=[]), owner=self._rows(kind)[key].owner)
            elif isinstance(record, ContactRecord):
                # A person has one company here: the one the record holds.
                found[key] = RecordSummary(key, display_name(key, record), record,
                                           companies=(record.company,) if record.company else ())
        return found

    def field_labels(self, kind: Kind) -> dict[str, str]:
        return dict(CONTACT_LABELS) if kind is Kind.CONTACTS else {}

    def record_url(self, kind: Kind, key: str) -> str:
        return ""   # no pages: its records are seen only through the interface

    # calendar lookups
    def find_by_uid(self, uids: Sequence[str]) -> dict[str, str]:
        wanted = {uid for uid in uids if uid}
        return {row.record.uid: key for key, row in self._rows(Kind.CALENDAR).items()
                if isinstance(row.record, EventRecord) and row.record.uid in wanted}

    def events_in_window(self, start: dt.datetime, end: dt.datetime) -> list[str]:
        found = []
        for key, row in self._rows(Kind.CALENDAR).items():
            event = row.record
            if row.owner != self.user or not isinstance(event, EventRecord) \
                    or event.start is None or event.end is None:
                continue
            # A series may have an occurrence in the window if it begins before its end.
            if event.start < end and (event.recurrence is not None or event.end > start):
                found.append(key)
        return found

    def leave_event(self, key: str, address: str, successor: str) -> CrmWrite:
        row = self._rows(Kind.CALENDAR).get(key)
        if row is None:
            return CrmWrite(key)
        leaving = {person for person, record in self._persons()
                   if address.lower() in record.emails} & row.participants
        hands_on = row.owner == self.user and bool(successor)
        if not leaving and not hands_on:
            return CrmWrite(key, str(row.version))
        row.participants -= leaving
        if hands_on:
            row.owner = successor
        return self._written(Kind.CALENDAR, key, row)

    def set_photo(self, key: str, photo: bytes | None) -> CrmWrite:
        row = self._rows(Kind.CONTACTS).get(key)
        if row is None:
            return CrmWrite(key, error=MISSING)
        row.photo = photo or None
        written = self._written(Kind.CONTACTS, key, row)
        written.token = photo_token(photo)
        return written

    # identity stamps
    def stamp(self, kind: Kind, key: str) -> str:
        return f"{STAMP_PREFIX}:{self.organization}:{kind}:{key}"

    def key_from_stamp(self, kind: Kind, stamp: str) -> str | None:
        prefix = f"{STAMP_PREFIX}:{self.organization}:{kind}:"
        key = stamp.removeprefix(prefix) if stamp.startswith(prefix) else ""
        # A key as this CRM makes them, whether or not its record still exists.
        number = key.removeprefix(f"{KEY_PREFIX[kind]}-")
        return key if number != key and number.isdigit() else None


def _revision(cursor: str) -> int:
    """The revision a cursor of this kind names. Any other text (never read, or a cursor of
    another CRM the organization used before) reads every change: the content hashes make
    the ones already synced no-ops."""
    number = cursor.removeprefix(CURSOR_PREFIX)
    return int(number) if number != cursor and number.isdigit() else 0


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


# A person's fields by the names reports give them; an address by its parts.
CONTACT_LABELS = {
    **{f"{f.name.removesuffix('_address')}_{part.name}": _label(
        f"{f.name.removesuffix('_address')}_{part.name}")
       for f in dataclasses.fields(ContactRecord) if f.name.endswith("_address")
       for part in dataclasses.fields(PostalAddress)},
    **{f.name: _label(f.name) for f in dataclasses.fields(ContactRecord)
       if isinstance(f.default, str) and f.name not in UNWRITTEN | {"display_name"}},
}
