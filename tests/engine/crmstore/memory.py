"""A CRM kept in memory: the smallest backend that keeps the whole CRM contract.

It proves `CrmBackend` is complete: the engine's side of every behaviour the contract asks
goes through the interface alone (only the test's own set-up, a classification node, and its
look at an event's participants go around it). It also gives tests a CRM without a database.

Organizations are named by strings; every `MemoryCrm` of one organization sees the same data
within the process. The change cursor is the organization's revision counter: every write
takes the next revision, and a record's version is the revision of its last write.

Not thread-safe: tests drive it from one thread.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from engine.crmstore.base import CrmBackend, CrmChange, CrmRecord, CrmWrite
from engine.matching import full_name, name_key
from engine.records import IDENTITY_FIELDS, ContactRecord, EventRecord, Kind, Record, exception_view

STAMP_PREFIX = "memory"
# Fields of a record that are not written: identity, and the photo (written by set_photo).
UNWRITTEN = IDENTITY_FIELDS | {"photo_token"}
# Attendees are kept as participants, not as a field.
EVENT_UNWRITTEN = UNWRITTEN | {"attendees"}
KEY_PREFIX = {Kind.CONTACTS: "person", Kind.CALENDAR: "event"}
NO_VALID_TIMES = "The event has no valid start and end."
MISSING = "The record no longer exists in the CRM."


@dataclass
class Row:
    record: Record
    version: int
    modified: dt.datetime
    origin: str
    owner: str
    branches: set[str] = field(default_factory=set)   # persons: classification nodes
    photo: bytes | None = None                         # persons
    participants: set[str] = field(default_factory=set)   # events: keys of persons


@dataclass
class Store:
    """One organization's CRM."""

    revision: int = 0
    rows: dict[Kind, dict[str, Row]] = field(
        default_factory=lambda: {Kind.CONTACTS: {}, Kind.CALENDAR: {}})
    # Per kind and key, the last change: what changes_since() hands out.
    journal: dict[Kind, dict[str, CrmChange]] = field(
        default_factory=lambda: {Kind.CONTACTS: {}, Kind.CALENDAR: {}})
    companies: dict[str, tuple[str, str]] = field(default_factory=dict)   # name key -> (key, name)
    branches: dict[str, str | None] = field(default_factory=dict)         # node -> parent

    def record_change(self, kind: Kind, key: str, deleted: bool = False) -> int:
        self.revision += 1
        self.journal[kind][key] = CrmChange(key, deleted, self.revision)
        return self.revision

    def branch(self, node: str) -> set[str]:
        """The node and every node below it."""
        found = {node}
        while True:
            below = {child for child, parent in self.branches.items()
                     if parent in found and child not in found}
            if not below:
                return found
            found |= below


_STORES: dict[str, Store] = {}
# Keys are unique in the process, so that a key of one organization names nothing in another.
_KEYS = itertools.count(1)


def new_key(prefix: str) -> str:
    return f"{prefix}-{next(_KEYS)}"


def store_of(organization: str) -> Store:
    return _STORES.setdefault(organization, Store())


def forget(organization: str) -> None:
    """Drop an organization's data (a test's cleanup)."""
    _STORES.pop(organization, None)


def add_branch(organization: str, name: str, parent: str | None = None) -> str:
    """A classification node, as a CRM user makes one; its key."""
    node = new_key(f"node-{name}")
    store_of(organization).branches[node] = parent
    return node


def participants(organization: str, key: str) -> set[str]:
    """Keys of the persons taking part in the event `key`."""
    return set(store_of(organization).rows[Kind.CALENDAR][key].participants)


def company_name_key(name: str) -> str:
    """" ACME  s.r.o." and "Acme s.r.o." are one company."""
    return " ".join(name.split()).casefold()


def photo_token(photo: bytes | None) -> str:
    return hashlib.sha256(photo).hexdigest()[:32] if photo else ""


def valid_times(record: EventRecord) -> bool:
    return record.start is not None and record.end is not None and record.start <= record.end


class MemoryCrm(CrmBackend):
    """The CRM of `organization` as a profile of the CRM user `user` sees it: every person
    of the organization; with `own_only`, only the user's; with `branch`, those of that
    classification node and its sub-nodes. The events in scope are the user's."""

    def __init__(self, organization: str, user: str, *, own_only: bool = False,
                 branch: str | None = None) -> None:
        self.organization = organization
        self.user = user
        self.own_only = own_only
        self.branch = branch

    @property
    def _store(self) -> Store:
        return store_of(self.organization)

    def _rows(self, kind: Kind) -> dict[str, Row]:
        return self._store.rows[kind]

    # reading
    def current_revision(self) -> int:
        return self._store.revision

    def changes_since(self, kind: Kind, revision: int) -> Iterator[CrmChange]:
        changes = [c for c in self._store.journal[kind].values() if c.revision > revision]
        yield from sorted(changes, key=lambda c: c.revision)

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
