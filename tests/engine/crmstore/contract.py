"""What every CRM backend promises, as tests written against `CrmBackend` alone.

A backend's test module subclasses `CrmContract` (as a `Test…` class), names the kind under
test (`backend_class`) and implements its few hooks: open a backend on an empty test
organization as one of its CRM users (with the contact scope a profile can choose), open one
on a second organization, make a classification node, name a CRM user as the interface names
users (`leave_event`'s successor, the e-mail import's user), read an event's participants and
an e-mail's persons and companies (which the interface has no call for), and give the test
organization's CRM connection and a sync profile on it, which the kind's class methods build
backends from. Nothing below names the built-in store's models.

Records are written and read back through the interface only; what a CRM keeps of a record is
`kept()`, less the fields the kind declares it cannot hold (`expected()`). The organization is
fresh for every test: the hooks' fixture is expected to make it.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from engine.crmstore.base import (
    CHANGED_MEANWHILE,
    Capability,
    CrmBackend,
    CrmDiagnosis,
    CrmRecord,
    CrmUpdate,
    CrmWrite,
    EmailMatch,
    SavedDocument,
)
from engine.crmstore.unheld import disagreements, without_unheld
from engine.matching import full_name, name_key
from engine.records import (
    Address,
    Attendee,
    ContactRecord,
    EventRecord,
    Kind,
    MessageRecord,
    PostalAddress,
    Record,
    RecurrenceRule,
    canonical,
    exception_view,
)

if TYPE_CHECKING:
    from profiles.models import CrmConnection, SyncProfile

KINDS = [Kind.CONTACTS, Kind.CALENDAR]
OTHER_KIND = {Kind.CONTACTS: Kind.CALENDAR, Kind.CALENDAR: Kind.CONTACTS}
# The CRM users of both test organizations.
USERS = ("alice", "bob")

# What a CRM keeps of a person: everything but the display name (made from the name parts),
# the categories (Exchange's own) and the photo token (the photo is written apart).
CONTACT_KEPT = tuple(name for name in canonical(ContactRecord())
                     if name not in ("display_name", "categories", "photo_token"))
# What a CRM keeps of an event. Attendees become participants (`participants()`); categories
# map onto the CRM's own list; organizer, response and cancellation are Exchange's view.
EVENT_KEPT = ("subject", "start", "end", "time_zone", "all_day", "location", "body", "private",
              "uid", "recurrence", "exceptions", "deleted_occurrences")

# Fields an update names, and other fields of the same record it must leave alone.
UPDATED = {Kind.CONTACTS: frozenset({"job_title", "company", "business_address"}),
           Kind.CALENDAR: frozenset({"subject", "location"})}
UPDATED_LATER = {Kind.CONTACTS: frozenset({"note"}), Kind.CALENDAR: frozenset({"body"})}

# Cursors other kinds of CRM might have stored: a time and the keys seen at it, a revision of
# another CRM. None is a cursor of the backends under test.
FOREIGN_CURSORS = ("2026-12-01T10:00:00Z|person-7,person-9", "raynet:17", "memory")

# What a report may name a person's fields by: the record's fields, an address by its parts.
LABELLED = frozenset(
    {f.name for f in dataclasses.fields(ContactRecord) if not f.name.endswith("_address")}
    | {f"{f.name.removesuffix('_address')}_{part.name}"
       for f in dataclasses.fields(ContactRecord) if f.name.endswith("_address")
       for part in dataclasses.fields(PostalAddress)})

SENT = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)

PHOTO = b"\x89PNG\r\n\x1a\n" + b"a small picture"
OTHER_PHOTO = b"\xff\xd8\xff\xe0" + b"another picture"


# --- records to write -----------------------------------------------------------------------
def person(i: int, **changes: Any) -> ContactRecord:
    """A card with every field a CRM keeps filled in, each one different for each `i`."""
    return dataclasses.replace(ContactRecord(
        title="Ing.", first_name=f"Jana{i}", middle_name="Marie", last_name=f"Nováková{i}",
        suffix="Ph.D.", company=f"Acme {i} s.r.o.", job_title=f"Engineer {i}",
        department=f"Research {i}", web_page=f"https://acme{i}.example/",
        email1=f"jana{i}@acme.example", email2=f"jana{i}@home.example",
        business_address=PostalAddress(f"Hlavní {i}", "Praha", "Praha", "110 00", "Czechia"),
        home_address=PostalAddress(f"Domácí {i}", "Brno", "Jihomoravský", "602 00", "Czechia"),
        phone_business=f"+420 111 111 {i:03}", phone_mobile=f"+420 777 777 {i:03}",
        note=f"First line of note {i}\nSecond line"), **changes)


def meeting(i: int, **changes: Any) -> EventRecord:
    """A single event on day `i` of March 2030, each field different for each `i`."""
    start = dt.datetime(2030, 3, 1, 9, tzinfo=dt.UTC) + dt.timedelta(days=i)
    return dataclasses.replace(EventRecord(
        subject=f"Meeting {i}", start=start, end=start + dt.timedelta(hours=1, minutes=30),
        time_zone="Europe/Prague", location=f"Room {i}", body=f"Agenda {i}\nSecond line",
        private=bool(i % 2), uid=f"meeting-{i}@example.com"), **changes)


def series(i: int) -> EventRecord:
    """A weekly series with two changed occurrences and two deleted ones, each latest first."""
    start = dt.datetime(2030, 3, 4, 8, tzinfo=dt.UTC)
    week = dt.timedelta(weeks=1)
    moved = [EventRecord(subject=f"Series {i}, moved", start=start + n * week + dt.timedelta(
        hours=2), end=start + n * week + dt.timedelta(hours=3), location="Elsewhere",
        original_start=start + n * week, kind="exception") for n in (3, 1)]
    return EventRecord(
        subject=f"Series {i}", start=start, end=start + dt.timedelta(hours=1),
        time_zone="Europe/Prague", location="Room S", body="Weekly",
        uid=f"series-{i}@example.com",
        recurrence=RecurrenceRule("weekly", 1, weekdays=("Monday",), start=start.date(),
                                  count=10),
        exceptions=moved, deleted_occurrences=(start + 5 * week, start + 2 * week),
        kind="master")


def message(subject: str = "Nabídka", message_id: str = "<a1@stavby.cz>",
            sender: str = "petr@stavby.cz") -> MessageRecord:
    return MessageRecord(message_id=message_id, subject=subject,
                         sender=Address(sender, "Petr Svoboda"),
                         to=(Address("alice@acme.example"),), sent=SENT, received=SENT,
                         body_text="Dobrý den")


def document(name: str, path: str = "2026/11/nabidka.pdf", root: Path | None = None
             ) -> SavedDocument:
    """A document saved on the share; with `root`, its file is written there too (a CRM that
    takes the file itself, not only its place on the share, reads it)."""
    content = b"%PDF-"
    if root is not None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    return SavedDocument(root=str(root or "/srv/share"), path=path, name=name,
                         size=len(content), sha256="ab" * 32, category="Příloha")


def sample(kind: Kind, i: int) -> Record:
    return person(i) if kind is Kind.CONTACTS else meeting(i)


def kept(kind: Kind, record: Record) -> dict[str, Any]:
    """The part of a record a CRM keeps, as canonical data; a series' exceptions hold only
    what an occurrence can change."""
    if isinstance(record, EventRecord):
        record = dataclasses.replace(
            record, exceptions=[exception_view(e) for e in record.exceptions])
    data = canonical(record)
    return {name: data[name] for name in (CONTACT_KEPT if kind is Kind.CONTACTS else EVENT_KEPT)}


def with_fields(before: Record, after: Record, fields: frozenset[str]) -> Record:
    """`before` with `fields` taken from `after`: what an update of those fields leaves."""
    return dataclasses.replace(before, **{name: getattr(after, name) for name in fields})


class CrmContract(abc.ABC):
    """The tests; a backend's module supplies the hooks below in a `Test…` subclass."""

    # The kind under test: its class methods build backends from a connection and a profile.
    backend_class: ClassVar[type[CrmBackend]]

    # --- hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def open_backend(self, user: str = "alice", *, own_only: bool = False,
                     branch: str | None = None) -> CrmBackend:
        """The test organization's CRM as a profile of the CRM user `user` (one of USERS)
        sees it: the persons of the whole organization; with `own_only`, only the user's; with
        `branch`, those of that classification node and its sub-nodes. Its events are the
        user's. Each call a new object on the same data."""

    @abc.abstractmethod
    def open_elsewhere(self) -> CrmBackend:
        """The CRM of another (empty) organization, as its user "alice" sees it."""

    @abc.abstractmethod
    def make_branch(self, name: str, parent: str | None = None) -> str:
        """A classification node of the test organization under `parent`; its key."""

    @abc.abstractmethod
    def user_key(self, user: str) -> str:
        """How the interface names the CRM user `user`: `leave_event`'s `successor`, the
        e-mail import's `user`; a profile of that user names them so too."""

    @abc.abstractmethod
    def participants(self, key: str) -> set[str]:
        """Keys of the persons taking part in the event `key`: its attendees that are
        persons of the CRM. Read behind the interface, which has no call for it."""

    @abc.abstractmethod
    def email_links(self, key: str) -> tuple[set[str], set[str]]:
        """Keys of the persons and of the companies the e-mail `key` is linked to. Read
        behind the interface, which has no call for it."""

    @abc.abstractmethod
    def connection(self) -> CrmConnection:
        """The test organization's CRM connection, of the kind under test."""

    @abc.abstractmethod
    def profile(self, user: str, scope: str, branch: str | None = None) -> SyncProfile:
        """A sync profile of the test organization for the CRM user `user`, its contacts
        from `scope` ("owned", "organization", or "branch" with the node `branch`)."""

    # --- helpers ----------------------------------------------------------------------------
    def created(self, backend: CrmBackend, kind: Kind, record: Record,
                origin: str = "") -> CrmWrite:
        written = backend.create(kind, record, origin)
        assert written.ok and written.key and written.version, written
        return written

    def fetched(self, backend: CrmBackend, kind: Kind, key: str) -> CrmRecord:
        found = backend.fetch(kind, [key])
        assert key in found, f"{kind} {key} not found"
        return found[key]

    def expected(self, kind: Kind, record: Record) -> dict[str, Any]:
        """What the kind under test keeps of `record` written to it: `kept()`, with the
        fields it declares it cannot hold (`unheld`) blank, as it reads them back."""
        return kept(kind, without_unheld(record, self.backend_class.unheld(kind)))

    def open_profile(self, user: str, scope: str, branch: str | None = None) -> CrmBackend:
        """The CRM as the kind builds it for a sync profile (`profile()`)."""
        return self.backend_class.for_profile(self.profile(user, scope, branch),
                                              self.connection())

    def open_organization(self) -> CrmBackend:
        """The CRM as the kind builds it for a report."""
        return self.backend_class.for_organization(self.connection())

    def gone_key(self, backend: CrmBackend, kind: Kind) -> str:
        """The key of a record that existed and was deleted."""
        key = self.created(backend, kind, sample(kind, 99)).key
        assert backend.delete(kind, key).ok
        return key

    # --- create and fetch -------------------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_a_created_record_reads_back_with_its_version(self, kind: Kind) -> None:
        backend = self.open_backend()
        record = sample(kind, 1)
        written = self.created(backend, kind, record, origin="AAMk-1")
        found = self.fetched(backend, kind, written.key)
        assert found.key == written.key
        assert found.version == written.version
        assert kept(kind, found.record) == self.expected(kind, record)
        assert found.modified is not None and found.modified.tzinfo is not None
        # What was read is the caller's: changing it changes nothing in the CRM.
        (name,) = UPDATED_LATER[kind]
        setattr(found.record, name, "changed by the reader")
        assert kept(kind, self.fetched(backend, kind, written.key).record) \
            == self.expected(kind, record)
        # Another object on the same organization sees the same record.
        assert self.fetched(self.open_backend(), kind, written.key).version == written.version

    @pytest.mark.parametrize("kind", KINDS)
    def test_records_created_together_read_back_each_with_its_version(self,
                                                                      kind: Kind) -> None:
        backend = self.open_backend()
        records = [sample(kind, i) for i in (1, 2, 3)]
        results = backend.create_many(kind, [(r, f"AAMk-{i}") for i, r in enumerate(records)])
        assert [r.ok for r in results] == [True, True, True], results
        assert len({r.key for r in results}) == 3
        found = backend.fetch(kind, [r.key for r in results])
        for result, record in zip(results, records, strict=True):
            assert found[result.key].version == result.version
            assert kept(kind, found[result.key].record) == self.expected(kind, record)

    def test_a_series_reads_back_with_its_exceptions_and_deleted_occurrences_in_order(
            self) -> None:
        backend = self.open_backend()
        record = series(1)
        written = self.created(backend, Kind.CALENDAR, record)
        found = self.fetched(backend, Kind.CALENDAR, written.key).record
        assert isinstance(found, EventRecord)
        assert kept(Kind.CALENDAR, found) == kept(Kind.CALENDAR, dataclasses.replace(
            record, exceptions=sorted(record.exceptions, key=lambda e: e.original_start),
            deleted_occurrences=tuple(sorted(record.deleted_occurrences))))
        assert found.kind == "master"

    def test_an_event_without_a_valid_start_and_end_is_refused_and_nothing_created(
            self) -> None:
        backend = self.open_backend()
        cursor = backend.current_cursor()
        start = dt.datetime(2030, 3, 4, 9, tzinfo=dt.UTC)
        backwards = meeting(1, end=start - dt.timedelta(hours=1), start=start)
        refused = [backend.create(Kind.CALENDAR, backwards, "AAMk-1"),
                   backend.create(Kind.CALENDAR, meeting(2, start=None), "AAMk-2")]
        assert [(r.ok, bool(r.error)) for r in refused] == [(False, True), (False, True)]
        many = backend.create_many(Kind.CALENDAR, [(meeting(3), "AAMk-3"),
                                                   (meeting(4, end=None), "AAMk-4"),
                                                   (meeting(5), "AAMk-5")])
        assert [r.ok for r in many] == [True, False, True]
        assert set(backend.find_by_origin(Kind.CALENDAR, [f"AAMk-{i}" for i in range(1, 6)])) \
            == {"AAMk-3", "AAMk-5"}
        assert {c.key for c in backend.changes_since(Kind.CALENDAR, cursor)} \
            == {many[0].key, many[2].key}

    @pytest.mark.parametrize("kind", KINDS)
    def test_fetch_leaves_out_missing_keys(self, kind: Kind) -> None:
        backend = self.open_backend()
        written = self.created(backend, kind, sample(kind, 1))
        gone = self.gone_key(backend, kind)
        assert set(backend.fetch(kind, [written.key, gone, "no-such-key"])) == {written.key}

    # --- update -----------------------------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_an_update_writes_only_the_fields_it_names(self, kind: Kind) -> None:
        backend = self.open_backend()
        before = sample(kind, 1)
        written = self.created(backend, kind, before)
        after = sample(kind, 2)
        updated = backend.update(kind, written.key, after, UPDATED[kind])
        assert updated.ok and updated.key == written.key, updated
        found = self.fetched(backend, kind, written.key)
        assert kept(kind, found.record) \
            == self.expected(kind, with_fields(before, after, UPDATED[kind]))
        assert updated.version == found.version != written.version

    @pytest.mark.parametrize("kind", KINDS)
    def test_an_update_in_the_version_it_names_is_written(self, kind: Kind) -> None:
        backend = self.open_backend()
        written = self.created(backend, kind, sample(kind, 1))
        updated = backend.update(kind, written.key, sample(kind, 2), UPDATED[kind],
                                 version=written.version)
        assert updated.ok and not updated.conflict, updated
        assert self.fetched(backend, kind, written.key).version == updated.version

    @pytest.mark.parametrize("kind", KINDS)
    def test_an_update_naming_an_older_version_is_refused_and_writes_nothing(
            self, kind: Kind) -> None:
        # A user's edit made after the sync read the record is neither overwritten nor hidden
        # behind the sync's write: the write is refused as a conflict, for the next run.
        backend = self.open_backend()
        written = self.created(backend, kind, sample(kind, 1))
        users_edit = self.open_backend("bob").update(kind, written.key, sample(kind, 2),
                                                     UPDATED_LATER[kind])
        assert users_edit.ok, users_edit
        edited = self.fetched(backend, kind, written.key)
        refused = backend.update(kind, written.key, sample(kind, 3), UPDATED[kind],
                                 version=written.version)
        assert (refused.ok, refused.conflict, refused.error) == (False, True, CHANGED_MEANWHILE)
        now = self.fetched(backend, kind, written.key)
        assert now.version == edited.version == users_edit.version
        assert kept(kind, now.record) == kept(kind, edited.record)

    @pytest.mark.parametrize("kind", KINDS)
    def test_an_update_of_a_missing_record_fails(self, kind: Kind) -> None:
        backend = self.open_backend()
        gone = self.gone_key(backend, kind)
        plain = backend.update(kind, gone, sample(kind, 1), UPDATED[kind])
        versioned = backend.update(kind, gone, sample(kind, 1), UPDATED[kind], version="1")
        assert (plain.ok, plain.conflict, bool(plain.error)) == (False, False, True)
        assert (versioned.ok, bool(versioned.error)) == (False, True)
        assert backend.fetch(kind, [gone]) == {}

    def test_an_update_to_an_event_without_a_valid_start_and_end_is_refused(self) -> None:
        backend = self.open_backend()
        before = meeting(1)
        written = self.created(backend, Kind.CALENDAR, before)
        assert before.start is not None
        backwards = meeting(2, start=before.start, end=before.start - dt.timedelta(hours=1))
        refused = backend.update(Kind.CALENDAR, written.key, backwards,
                                 frozenset({"start", "end", "subject"}))
        assert not refused.ok and refused.error
        found = self.fetched(backend, Kind.CALENDAR, written.key)
        assert (found.version, kept(Kind.CALENDAR, found.record)) \
            == (written.version, self.expected(Kind.CALENDAR, before))

    @pytest.mark.parametrize("kind", KINDS)
    def test_many_updates_report_each_one_in_order(self, kind: Kind) -> None:
        backend = self.open_backend()
        fresh, stale = (self.created(backend, kind, sample(kind, i)) for i in (1, 2))
        gone = self.gone_key(backend, kind)
        assert self.open_backend("bob").update(kind, stale.key, sample(kind, 3),
                                               UPDATED_LATER[kind]).ok
        stale_now = self.fetched(backend, kind, stale.key)
        results = backend.update_many(kind, [
            CrmUpdate(fresh.key, sample(kind, 4), UPDATED[kind], fresh.version),
            CrmUpdate(stale.key, sample(kind, 5), UPDATED[kind], stale.version),
            CrmUpdate(gone, sample(kind, 6), UPDATED[kind]),
            # The same record a second time in one batch: both writes land.
            CrmUpdate(fresh.key, sample(kind, 7), UPDATED_LATER[kind]),
        ])
        assert [(r.key, r.ok, r.conflict) for r in results] == [
            (fresh.key, True, False), (stale.key, False, True), (gone, False, False),
            (fresh.key, True, False)], results
        assert results[2].error
        found = backend.fetch(kind, [fresh.key, stale.key])
        assert kept(kind, found[fresh.key].record) == self.expected(kind, with_fields(
            with_fields(sample(kind, 1), sample(kind, 4), UPDATED[kind]), sample(kind, 7),
            UPDATED_LATER[kind]))
        assert results[3].version == found[fresh.key].version
        assert (found[stale.key].version, kept(kind, found[stale.key].record)) \
            == (stale_now.version, kept(kind, stale_now.record))

    @pytest.mark.parametrize("kind", KINDS)
    def test_no_writes_give_no_results(self, kind: Kind) -> None:
        backend = self.open_backend()
        written = self.created(backend, kind, sample(kind, 1))
        cursor = backend.current_cursor()
        assert backend.create_many(kind, []) == []
        assert backend.update_many(kind, []) == []
        assert list(backend.changes_since(kind, cursor)) == []
        assert self.fetched(backend, kind, written.key).version == written.version

    # --- delete -----------------------------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_a_deleted_record_is_gone_and_deleting_it_again_succeeds(self, kind: Kind) -> None:
        backend = self.open_backend()
        kept_one, deleted = (self.created(backend, kind, sample(kind, i), origin=f"AAMk-{i}")
                             for i in (1, 2))
        result = backend.delete(kind, deleted.key)
        assert result.ok and result.key == deleted.key, result
        assert set(backend.fetch(kind, [kept_one.key, deleted.key])) == {kept_one.key}
        assert backend.in_scope(kind, [deleted.key]) == set()
        assert backend.find_by_origin(kind, ["AAMk-1", "AAMk-2"]) == {"AAMk-1": kept_one.key}
        again = backend.delete(kind, deleted.key)
        assert again.ok and again.key == deleted.key, again

    def test_a_deleted_series_is_found_no_more(self) -> None:
        backend = self.open_backend()
        written = self.created(backend, Kind.CALENDAR, series(1))
        assert backend.delete(Kind.CALENDAR, written.key).ok
        assert backend.fetch(Kind.CALENDAR, [written.key]) == {}
        assert backend.find_by_uid(["series-1@example.com"]) == {}
        window = (dt.datetime(2030, 3, 1, tzinfo=dt.UTC), dt.datetime(2030, 6, 1, tzinfo=dt.UTC))
        assert backend.events_in_window(*window) == []

    # --- changes ----------------------------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_changes_since_a_cursor_hold_each_record_once_oldest_first(self,
                                                                       kind: Kind) -> None:
        backend = self.open_backend()
        before = self.created(backend, kind, sample(kind, 1))
        cursor = backend.current_cursor()
        first, second = (self.created(backend, kind, sample(kind, i)) for i in (2, 3))
        assert backend.update(kind, before.key, sample(kind, 4), UPDATED[kind]).ok
        assert backend.update(kind, first.key, sample(kind, 5), UPDATED[kind]).ok
        changes = list(backend.changes_since(kind, cursor))
        assert [(c.key, c.deleted) for c in changes] == [
            (second.key, False), (before.key, False), (first.key, False)]
        assert backend.delete(kind, second.key).ok
        changes = list(backend.changes_since(kind, cursor))
        assert [(c.key, c.deleted) for c in changes] == [
            (before.key, False), (first.key, False), (second.key, True)]
        assert list(backend.changes_since(kind, backend.current_cursor())) == []

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_change_names_the_version_the_record_is_in(self, kind: Kind) -> None:
        # The engine tells its own writes read back from a user's edit by this equality,
        # without fetching the records.
        backend = self.open_backend()
        cursor = backend.current_cursor()
        created = self.created(backend, kind, sample(kind, 1))
        (change,) = backend.changes_since(kind, cursor)
        assert change.version == created.version
        updated = backend.update(kind, created.key, sample(kind, 2), UPDATED[kind])
        (change,) = backend.changes_since(kind, cursor)
        assert change.version == updated.version \
            == self.fetched(backend, kind, created.key).version != created.version

    def test_a_series_changes_as_one_record(self) -> None:
        # Its exceptions are part of it, never records of their own: a key the journal hands
        # out is one fetch() can read (or a deleted record's).
        backend = self.open_backend()
        cursor = backend.current_cursor()
        written = self.created(backend, Kind.CALENDAR, series(1))
        assert [(c.key, c.deleted) for c in backend.changes_since(Kind.CALENDAR, cursor)] \
            == [(written.key, False)]
        assert backend.delete(Kind.CALENDAR, written.key).ok
        assert [(c.key, c.deleted) for c in backend.changes_since(Kind.CALENDAR, cursor)] \
            == [(written.key, True)]

    @pytest.mark.parametrize("kind", KINDS)
    def test_changes_of_one_kind_leave_out_the_other(self, kind: Kind) -> None:
        backend = self.open_backend()
        cursor = backend.current_cursor()
        written = self.created(backend, kind, sample(kind, 1))
        self.created(backend, OTHER_KIND[kind], sample(OTHER_KIND[kind], 2))
        assert [c.key for c in backend.changes_since(kind, cursor)] == [written.key]

    @pytest.mark.parametrize("kind", KINDS)
    def test_the_cursor_is_text_empty_before_any_change_and_moves_with_writes(
            self, kind: Kind) -> None:
        assert self.open_elsewhere().current_cursor() == ""
        backend = self.open_backend()
        written = self.created(backend, kind, sample(kind, 1))
        cursor = backend.current_cursor()
        assert isinstance(cursor, str) and cursor
        # Read again, or by another object on the organization: the same place.
        assert self.open_backend("bob").current_cursor() == backend.current_cursor() == cursor
        assert [c.key for c in backend.changes_since(kind, "")] == [written.key]
        assert backend.update(kind, written.key, sample(kind, 2), UPDATED[kind]).ok
        assert backend.current_cursor() != cursor
        assert [c.key for c in backend.changes_since(kind, cursor)] == [written.key]

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_cursor_of_another_crm_reads_every_change(self, kind: Kind) -> None:
        # An organization switched to this CRM keeps the cursors its folders stored for the
        # other: read as "never read", they cost a pass the content hashes make a no-op,
        # where read as a place of this CRM they would skip its changes unseen.
        backend = self.open_backend()
        first, second = (self.created(backend, kind, sample(kind, i)) for i in (1, 2))
        assert backend.delete(kind, first.key).ok
        everything = [(c.key, c.deleted) for c in backend.changes_since(kind, "")]
        assert everything == [(second.key, False), (first.key, True)]
        assert list(backend.changes_since(kind, backend.current_cursor())) == []
        for cursor in FOREIGN_CURSORS:
            assert [(c.key, c.deleted) for c in backend.changes_since(kind, cursor)] \
                == everything, cursor

    # --- lookups ----------------------------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_records_are_found_by_the_exchange_item_they_were_created_from(
            self, kind: Kind) -> None:
        backend = self.open_backend()
        single = self.created(backend, kind, sample(kind, 1), origin="AAMk-1")
        batch = backend.create_many(kind, [(sample(kind, 2), "AAMk-2"),
                                           (sample(kind, 3), "")])
        assert backend.find_by_origin(kind, ["AAMk-1", "AAMk-2", "AAMk-9", ""]) == {
            "AAMk-1": single.key, "AAMk-2": batch[0].key}
        assert backend.find_by_origin(OTHER_KIND[kind], ["AAMk-1", "AAMk-2"]) == {}
        assert backend.find_by_origin(kind, []) == {}

    def test_persons_are_found_by_any_of_their_addresses_in_scope_or_not(self) -> None:
        mine = self.created(self.open_backend(own_only=True), Kind.CONTACTS,
                            person(1, email1="", email2="Eva@Acme.example"))
        theirs = self.created(self.open_backend("bob", own_only=True), Kind.CONTACTS,
                              person(2, email3="eva@acme.EXAMPLE"))
        backend = self.open_backend(own_only=True)
        assert backend.in_scope(Kind.CONTACTS, [theirs.key]) == set()
        found = backend.find_by_email(["EVA@acme.example", "jana2@acme.example",
                                       "nobody@acme.example"])
        # A CRM without a third e-mail has not kept that one.
        eva = [mine.key] if "email3" in self.backend_class.unheld(Kind.CONTACTS) \
            else [mine.key, theirs.key]
        assert {address: sorted(keys) for address, keys in found.items()} == {
            "eva@acme.example": sorted(eva),
            "jana2@acme.example": [theirs.key], "nobody@acme.example": []}
        assert backend.find_by_email([]) == {}
        assert backend.find_by_email([""]) == {}

    def test_persons_without_an_address_are_found_by_name_and_company(self) -> None:
        owners = self.open_backend("bob", own_only=True)
        nameless = {"email1": "", "email2": "", "email3": ""}
        plain = self.created(owners, Kind.CONTACTS, person(
            1, first_name="Jiří", middle_name="", last_name="Dvořák", company="Stavby a.s.",
            **nameless))
        self.created(owners, Kind.CONTACTS, person(   # has an address: matched by it instead
            2, first_name="Jiří", middle_name="", last_name="Dvořák", company="Stavby a.s."))
        self.created(owners, Kind.CONTACTS, person(   # another company
            3, first_name="Jiří", middle_name="", last_name="Dvořák", company="Jiná a.s.",
            **nameless))
        wanted = name_key(full_name("JIRI", "", "dvorak"), " stavby  A.S.")
        unknown = name_key(full_name("Petr", "", "Novák"), "")
        backend = self.open_backend(own_only=True)
        assert backend.find_by_name([wanted, unknown]) == {wanted: [plain.key], unknown: []}
        assert backend.find_by_name([]) == {}
        assert backend.find_by_name([""]) == {}

    def test_companies_match_case_and_space_insensitively_without_duplicates(self) -> None:
        backend = self.open_backend()
        acme = backend.find_or_create_company("ACME s.r.o.")
        assert acme
        assert backend.find_or_create_company("  acme   S.R.O. ") == acme
        assert self.open_backend("bob").find_or_create_company("Acme s.r.o.") == acme
        assert backend.find_or_create_company("Beta a.s.") != acme
        # A person names the existing company, as it is spelled, not a second one.
        written = self.created(backend, Kind.CONTACTS, person(1, company="Acme  S.R.O."))
        assert self.fetched(backend, Kind.CONTACTS, written.key).record.company == "ACME s.r.o."
        together = backend.create_many(Kind.CONTACTS, [(person(2, company="Gama a.s."), ""),
                                                       (person(3, company="GAMA  A.S."), "")])
        found = backend.fetch(Kind.CONTACTS, [r.key for r in together])
        names = {r.record.company for r in found.values() if isinstance(r.record, ContactRecord)}
        assert len(names) == 1 and names <= {"Gama a.s.", "GAMA  A.S."}, names

    # --- scope ------------------------------------------------------------------------------
    def test_the_whole_organization_is_in_scope_unless_the_profile_keeps_to_its_own(
            self) -> None:
        alices = self.created(self.open_backend(), Kind.CONTACTS, person(1))
        bobs = self.created(self.open_backend("bob", own_only=True), Kind.CONTACTS, person(2))
        keys = [alices.key, bobs.key, self.gone_key(self.open_backend(), Kind.CONTACTS)]
        assert self.open_backend().in_scope(Kind.CONTACTS, keys) == {alices.key, bobs.key}
        assert self.open_backend(own_only=True).in_scope(Kind.CONTACTS, keys) == {alices.key}
        assert self.open_backend("bob", own_only=True).in_scope(Kind.CONTACTS, keys) \
            == {bobs.key}
        assert self.open_backend().in_scope(Kind.CONTACTS, []) == set()

    def test_a_branch_holds_its_own_persons_and_those_of_its_sub_nodes(self) -> None:
        customers = self.make_branch("Zákazníci")
        moravia = self.make_branch("Morava", parent=customers)
        suppliers = self.make_branch("Dodavatelé")
        in_moravia = self.created(self.open_backend(branch=moravia), Kind.CONTACTS, person(1))
        in_customers = self.created(self.open_backend(branch=customers), Kind.CONTACTS,
                                    person(2))
        outside = self.created(self.open_backend(), Kind.CONTACTS, person(3))
        keys = [in_moravia.key, in_customers.key, outside.key]
        assert self.open_backend(branch=customers).in_scope(Kind.CONTACTS, keys) \
            == {in_moravia.key, in_customers.key}
        assert self.open_backend(branch=moravia).in_scope(Kind.CONTACTS, keys) \
            == {in_moravia.key}
        assert self.open_backend(branch=suppliers).in_scope(Kind.CONTACTS, keys) == set()
        backend = self.open_backend()
        assert set(backend.persons_in_branch(customers)) == {in_moravia.key, in_customers.key}
        assert list(backend.persons_in_branch(moravia)) == [in_moravia.key]
        assert list(backend.persons_in_branch(suppliers)) == []

    def test_a_profile_syncs_its_users_own_events(self) -> None:
        alices = self.created(self.open_backend(own_only=True), Kind.CALENDAR, meeting(1))
        bobs = self.created(self.open_backend("bob"), Kind.CALENDAR, meeting(2))
        keys = [alices.key, bobs.key]
        # Whatever the persons' scope, the events are the user's own.
        assert self.open_backend().in_scope(Kind.CALENDAR, keys) == {alices.key}
        assert self.open_backend("bob", own_only=True).in_scope(Kind.CALENDAR, keys) \
            == {bobs.key}
        assert self.open_backend().in_scope(Kind.CALENDAR, []) == set()

    # --- calendar lookups -------------------------------------------------------------------
    def test_events_are_found_by_their_meeting_uid_whoever_owns_them(self) -> None:
        alices = self.created(self.open_backend(), Kind.CALENDAR, series(1))
        bobs = self.created(self.open_backend("bob"), Kind.CALENDAR, meeting(2))
        self.created(self.open_backend(), Kind.CALENDAR, meeting(3, uid=""))
        backend = self.open_backend()
        assert backend.find_by_uid(["series-1@example.com", "meeting-2@example.com",
                                    "unknown@example.com", ""]) == {
            "series-1@example.com": alices.key, "meeting-2@example.com": bobs.key}
        assert backend.find_by_uid([]) == {}

    def test_the_window_holds_the_users_events_that_may_overlap_it(self) -> None:
        start, end = (dt.datetime(2030, 3, 10, tzinfo=dt.UTC),
                      dt.datetime(2030, 3, 17, tzinfo=dt.UTC))
        hour = dt.timedelta(hours=1)

        def at(begin: dt.datetime, length: dt.timedelta = hour, **changes: Any) -> EventRecord:
            return meeting(0, start=begin, end=begin + length, uid="", **changes)

        backend, bobs = self.open_backend(), self.open_backend("bob")
        inside = self.created(backend, Kind.CALENDAR, at(start + 2 * 24 * hour))
        across = self.created(backend, Kind.CALENDAR, at(start - hour, 2 * hour))
        self.created(backend, Kind.CALENDAR, at(start - hour))          # ends as it begins
        self.created(backend, Kind.CALENDAR, at(end))                   # begins as it ends
        self.created(backend, Kind.CALENDAR, at(end + 3 * 24 * hour))   # later
        earlier_series = self.created(backend, Kind.CALENDAR, series(1))
        self.created(backend, Kind.CALENDAR, dataclasses.replace(
            series(2), start=end + hour, end=end + 2 * hour, exceptions=[],
            deleted_occurrences=()))                                    # series begins later
        bobs_own = self.created(bobs, Kind.CALENDAR, at(start + hour))  # not the user's
        assert sorted(backend.events_in_window(start, end)) \
            == sorted([inside.key, across.key, earlier_series.key])
        assert bobs.events_in_window(start, end) == [bobs_own.key]

    def test_leaving_an_event_takes_the_user_off_it_and_hands_it_on(self) -> None:
        backend = self.open_backend()
        eva, jan = (self.created(backend, Kind.CONTACTS, person(i, email1=address))
                    for i, address in ((1, "eva@acme.example"), (2, "jan@acme.example")))
        record = meeting(1, attendees=(Attendee("Eva@Acme.example", "Eva"),
                                       Attendee("jan@acme.example", "Jan"),
                                       Attendee("nobody@acme.example")))
        event = self.created(backend, Kind.CALENDAR, record)
        assert self.participants(event.key) == {eva.key, jan.key}
        left = backend.leave_event(event.key, "EVA@acme.example", self.user_key("bob"))
        assert left.ok and left.key == event.key, left
        assert self.participants(event.key) == {jan.key}
        assert left.version == self.fetched(backend, Kind.CALENDAR, event.key).version
        assert backend.in_scope(Kind.CALENDAR, [event.key]) == set()
        assert self.open_backend("bob").in_scope(Kind.CALENDAR, [event.key]) == {event.key}

    def test_leaving_an_event_of_another_user_leaves_it_theirs(self) -> None:
        bobs = self.created(self.open_backend("bob"), Kind.CALENDAR, meeting(1))
        left = self.open_backend().leave_event(bobs.key, "alice@acme.example",
                                               self.user_key("alice"))
        assert left.ok, left
        assert self.open_backend("bob").in_scope(Kind.CALENDAR, [bobs.key]) == {bobs.key}
        assert self.open_backend().in_scope(Kind.CALENDAR, [bobs.key]) == set()

    def test_leaving_an_event_without_a_successor_keeps_it_the_users(self) -> None:
        backend = self.open_backend()
        event = self.created(backend, Kind.CALENDAR, meeting(1))
        assert backend.leave_event(event.key, "alice@acme.example", "").ok
        assert backend.in_scope(Kind.CALENDAR, [event.key]) == {event.key}

    def test_leaving_a_missing_event_succeeds(self) -> None:
        backend = self.open_backend()
        gone = self.gone_key(backend, Kind.CALENDAR)
        left = backend.leave_event(gone, "alice@acme.example", self.user_key("bob"))
        assert left.ok and left.key == gone, left
        assert backend.fetch(Kind.CALENDAR, [gone]) == {}

    def test_attendees_named_by_an_update_become_the_participants(self) -> None:
        backend = self.open_backend()
        eva, jan = (self.created(backend, Kind.CONTACTS, person(i)) for i in (1, 2))
        event = self.created(backend, Kind.CALENDAR, meeting(1, attendees=(
            Attendee("jana1@acme.example"),)))
        assert self.participants(event.key) == {eva.key}
        unnamed = meeting(1, attendees=(Attendee("jana2@home.example"),))
        assert backend.update(Kind.CALENDAR, event.key, unnamed, frozenset({"subject"})).ok
        assert self.participants(event.key) == {eva.key}
        assert backend.update(Kind.CALENDAR, event.key, unnamed, frozenset({"attendees"})).ok
        assert self.participants(event.key) == {jan.key}

    # --- photos -----------------------------------------------------------------------------
    def test_a_photo_round_trips_and_its_token_follows_it(self) -> None:
        backend = self.open_backend()
        written = self.created(backend, Kind.CONTACTS, person(1))
        assert backend.read_photo(written.key) is None
        assert self.fetched(backend, Kind.CONTACTS, written.key).record.photo_token == ""
        first = backend.set_photo(written.key, PHOTO)
        assert first.ok and first.token, first
        found = self.fetched(backend, Kind.CONTACTS, written.key)
        assert (found.record.photo_token, found.version) == (first.token, first.version)
        assert backend.read_photo(written.key) == PHOTO
        second = backend.set_photo(written.key, OTHER_PHOTO)
        assert second.ok and second.token not in ("", first.token), second
        assert backend.read_photo(written.key) == OTHER_PHOTO
        removed = backend.set_photo(written.key, None)
        assert (removed.ok, removed.token) == (True, ""), removed
        assert backend.read_photo(written.key) is None
        assert self.fetched(backend, Kind.CONTACTS, written.key).record.photo_token == ""

    def test_a_missing_persons_photo_is_none_and_cannot_be_set(self) -> None:
        backend = self.open_backend()
        gone = self.gone_key(backend, Kind.CONTACTS)
        assert backend.read_photo(gone) is None
        refused = backend.set_photo(gone, PHOTO)
        assert not refused.ok and refused.error, refused

    # --- identity stamps --------------------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_a_stamp_names_its_record_and_no_other(self, kind: Kind) -> None:
        backend = self.open_backend()
        first, second = (self.created(backend, kind, sample(kind, i)).key for i in (1, 2))
        stamp = backend.stamp(kind, first)
        assert stamp and stamp != backend.stamp(kind, second)
        assert backend.key_from_stamp(kind, stamp) == first
        assert self.open_backend("bob", own_only=True).key_from_stamp(kind, stamp) == first
        assert backend.key_from_stamp(OTHER_KIND[kind], stamp) is None

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_foreign_stamp_names_nothing(self, kind: Kind) -> None:
        backend = self.open_backend()
        key = self.created(backend, kind, sample(kind, 1)).key
        assert self.open_elsewhere().key_from_stamp(kind, backend.stamp(kind, key)) is None
        for stamp in ("", "AAMkAGI2TG93AAA=", f"{backend.stamp(kind, key)}x", "crm:"):
            assert backend.key_from_stamp(kind, stamp) is None, stamp

    # --- e-mail import ----------------------------------------------------------------------
    def test_a_message_is_filed_once_and_found_by_its_identity(self) -> None:
        backend = self.open_backend()
        alice, bob = self.user_key("alice"), self.user_key("bob")
        assert backend.find_email(message(), "item-1", alice) == EmailMatch()
        filing = backend.file_email(message(), "item-1", EmailMatch(), alice, [], [])
        assert filing.created and filing.key
        # Another mailbox's copy: another item, the same Message-ID and fingerprint.
        assert backend.find_email(message(), "item-2", alice) == EmailMatch(filing.key,
                                                                            mine=True)
        assert backend.find_email(message(), "item-2", bob) == EmailMatch(filing.key)
        assert backend.filed_emails(bob, ["item-1"]) == {}   # not Bob's yet
        again = self.open_backend("bob").file_email(message(), "item-2",
                                                    EmailMatch(filing.key), bob, [], [])
        assert (again.key, again.created) == (filing.key, False)
        assert backend.find_email(message(), "item-3", bob) == EmailMatch(filing.key,
                                                                          mine=True)
        # By the item it was first filed from, for each user it is linked to.
        for user in (alice, bob):
            found = backend.filed_emails(user, ["item-1", "item-9"])
            assert list(found) == ["item-1"], user
            assert (found["item-1"].key, found["item-1"].subject) == (filing.key, "Nabídka")
        assert backend.filed_emails(bob, ["item-9"]) == {}
        assert backend.filed_emails(bob, []) == {}

    def test_a_different_message_reusing_a_message_id_collides_and_is_filed_apart(
            self) -> None:
        backend = self.open_backend()
        alice = self.user_key("alice")
        first = backend.file_email(message(), "item-1", EmailMatch(), alice, [], [])
        for other in (message(subject="Something else"), message(sender="eva@stavby.cz"),
                      dataclasses.replace(message(), sent=SENT + dt.timedelta(minutes=1))):
            match = backend.find_email(other, "item-2", alice)
            assert match == EmailMatch(collided=first.key), other
        other = message(subject="Something else")
        second = backend.file_email(other, "item-2", backend.find_email(other, "item-2", alice),
                                    alice, [], [])
        assert second.created and second.key != first.key
        assert backend.find_email(other, "item-3", alice) == EmailMatch(second.key, mine=True)
        assert backend.find_email(message(), "item-3", alice) == EmailMatch(first.key,
                                                                            mine=True)

    def test_a_message_without_a_message_id_is_found_by_its_mailbox_item(self) -> None:
        backend = self.open_backend()
        alice = self.user_key("alice")
        bare = message(message_id="")
        filing = backend.file_email(bare, "item-1", EmailMatch(), alice, [], [])
        assert filing.created
        assert backend.find_email(bare, "item-1", alice) == EmailMatch(filing.key, mine=True)
        assert backend.find_email(bare, "item-2", alice) == EmailMatch()
        # Another mailbox's copy cannot be told for the same message: an e-mail of its own.
        copy = backend.file_email(bare, "item-2", EmailMatch(), alice, [], [])
        assert copy.created and copy.key != filing.key

    def test_messages_are_found_together_as_each_would_be_alone(self) -> None:
        backend = self.open_backend()
        alice, bob = self.user_key("alice"), self.user_key("bob")
        filed = backend.file_email(message(), "item-1", EmailMatch(), alice, [], [])
        bare = message(message_id="")
        bare_filed = backend.file_email(bare, "item-2", EmailMatch(), alice, [], [])
        asked = [(message(), "item-3"), (message(subject="Something else"), "item-4"),
                 (message(message_id="<new@stavby.cz>"), "item-5"), (bare, "item-2"),
                 (bare, "item-6"), (message(), "item-7")]
        for user in (alice, bob):
            together = backend.find_emails(asked, user)
            assert together == [backend.find_email(m, origin, user) for m, origin in asked]
        assert backend.find_emails(asked, alice) == [
            EmailMatch(filed.key, mine=True), EmailMatch(collided=filed.key), EmailMatch(),
            EmailMatch(bare_filed.key, mine=True), EmailMatch(), EmailMatch(filed.key,
                                                                           mine=True)]
        assert backend.find_emails([], alice) == []

    def test_filing_what_another_import_filed_meanwhile_takes_that_e_mail(self) -> None:
        # Both imports looked before either filed: the second one meets the first's e-mail.
        alice, bob = self.user_key("alice"), self.user_key("bob")
        first = self.open_backend().file_email(message(), "item-1", EmailMatch(), alice, [],
                                               [])
        second = self.open_backend("bob").file_email(message(), "item-2", EmailMatch(), bob,
                                                     [], [])
        assert (second.key, second.created) == (first.key, False)
        backend = self.open_backend()
        assert backend.find_email(message(), "item-3", bob) == EmailMatch(first.key, mine=True)
        assert set(backend.filed_emails(bob, ["item-1", "item-2"])) == {"item-1"}

    def test_the_e_mail_is_linked_to_the_persons_and_their_companies(self) -> None:
        backend = self.open_backend()
        petr = self.created(backend, Kind.CONTACTS, person(1, company="Stavby s.r.o."))
        eva = self.created(backend, Kind.CONTACTS, person(2, company=""))
        self.created(backend, Kind.CONTACTS, person(3, company="Jiná a.s."))   # not named
        elsewhere = self.created(self.open_elsewhere(), Kind.CONTACTS, person(4))
        filing = backend.file_email(message(), "item-1", EmailMatch(), self.user_key("alice"),
                                    [petr.key, eva.key, elsewhere.key], [])
        persons, companies = self.email_links(filing.key)
        assert persons == {petr.key, eva.key}   # never another organization's person
        assert companies == {backend.find_or_create_company("Stavby s.r.o.")}
        # Filed again for another user with more persons: the links add up.
        jan = self.created(backend, Kind.CONTACTS, person(5, company="Jiná a.s."))
        backend.file_email(message(), "item-2", EmailMatch(filing.key), self.user_key("bob"),
                           [jan.key], [])
        persons, companies = self.email_links(filing.key)
        assert persons == {petr.key, eva.key, jan.key}
        assert companies == {backend.find_or_create_company("Stavby s.r.o."),
                             backend.find_or_create_company("Jiná a.s.")}

    def test_documents_are_recorded_once_per_name(self, tmp_path: Path) -> None:
        backend = self.open_backend()
        filing = backend.file_email(message(), "item-1", EmailMatch(), self.user_key("alice"),
                                    [], [document("nabidka.pdf", root=tmp_path)])
        assert backend.email_documents(filing.key) == ["nabidka.pdf"]
        backend.file_email(message(), "item-2", EmailMatch(filing.key), self.user_key("bob"),
                           [], [document("nabidka.pdf", "2026/11/other.pdf", tmp_path),
                                document("cenik.xlsx", "2026/11/cenik.xlsx", tmp_path)])
        assert sorted(backend.email_documents(filing.key)) == ["cenik.xlsx", "nabidka.pdf"]
        other = backend.file_email(message(subject="Jiná"), "item-3", EmailMatch(),
                                   self.user_key("alice"), [], [])
        assert backend.email_documents(other.key) == []

    def test_persons_are_named_as_a_list_shows_them(self) -> None:
        backend = self.open_backend()
        jana, jan = (self.created(backend, Kind.CONTACTS, person(i)) for i in (1, 2))
        elsewhere = self.created(self.open_elsewhere(), Kind.CONTACTS, person(3))
        gone = self.gone_key(backend, Kind.CONTACTS)
        names = backend.person_names([jana.key, jan.key, elsewhere.key, gone, "no-such-key"])
        assert set(names) == {jana.key, jan.key}
        for key, i in ((jana.key, 1), (jan.key, 2)):
            assert f"Jana{i}" in names[key] and f"Nováková{i}" in names[key], names
        assert backend.person_names([]) == {}

    def test_another_organization_has_none_of_the_e_mails(self) -> None:
        filing = self.open_backend().file_email(message(), "item-1", EmailMatch(),
                                                self.user_key("alice"), [], [])
        elsewhere = self.open_elsewhere()
        assert elsewhere.find_email(message(), "item-1", self.user_key("alice")) \
            == EmailMatch()
        assert elsewhere.filed_emails(self.user_key("alice"), ["item-1"]) == {}
        assert elsewhere.email_documents(filing.key) == []

    # --- reports ----------------------------------------------------------------------------
    def test_a_person_is_summarized_by_name_with_its_fields_and_companies(self) -> None:
        backend = self.open_backend()
        written = self.created(backend, Kind.CONTACTS, person(1))
        gone = self.gone_key(backend, Kind.CONTACTS)
        found = self.open_organization().summaries(Kind.CONTACTS,
                                                    [written.key, gone, "no-such-key"])
        assert set(found) == {written.key}
        summary = found[written.key]
        assert summary.key == written.key
        assert "Jana1" in summary.title and "Nováková1" in summary.title, summary.title
        assert kept(Kind.CONTACTS, summary.record) == self.expected(Kind.CONTACTS, person(1))
        assert summary.companies == ("Acme 1 s.r.o.",)
        assert backend.summaries(Kind.CONTACTS, []) == {}

    def test_an_event_is_summarized_by_subject_with_its_owner(self) -> None:
        alices = self.created(self.open_backend(), Kind.CALENDAR, meeting(1))
        bobs = self.created(self.open_backend("bob"), Kind.CALENDAR, meeting(2))
        found = self.open_organization().summaries(Kind.CALENDAR, [alices.key, bobs.key])
        assert [found[k].title for k in (alices.key, bobs.key)] == ["Meeting 1", "Meeting 2"]
        assert kept(Kind.CALENDAR, found[alices.key].record) \
            == self.expected(Kind.CALENDAR, meeting(1))
        owners = {found[alices.key].owner, found[bobs.key].owner}
        assert len(owners) == 2 and "" not in owners, owners
        gone = self.gone_key(self.open_backend(), Kind.CALENDAR)
        assert self.open_organization().summaries(Kind.CALENDAR, [gone, "no-such-key"]) == {}

    def test_field_labels_name_a_persons_fields(self) -> None:
        labels = self.open_organization().field_labels(Kind.CONTACTS)
        assert "last_name" in labels and "business_city" in labels, labels
        assert set(labels) <= LABELLED, set(labels) - LABELLED
        assert all(isinstance(v, str) and v.strip() for v in labels.values()), labels

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_records_page_is_an_address_or_nothing(self, kind: Kind) -> None:
        written = self.created(self.open_backend(), kind, sample(kind, 1))
        crm = self.open_organization()
        url = crm.record_url(kind, written.key)
        assert isinstance(url, str)
        assert url == "" or url.startswith(("/", "https://", "http://")), url
        assert crm.record_url(kind, "no-such-key") == ""

    # --- the kind ---------------------------------------------------------------------------
    def test_a_profiles_crm_holds_the_persons_of_the_scope_it_chose(self) -> None:
        alices, bobs = self.open_profile("alice", "owned"), self.open_profile("bob", "owned")
        whole = self.open_profile("alice", "organization")
        alice_made = self.created(alices, Kind.CONTACTS, person(1))
        bob_made = self.created(bobs, Kind.CONTACTS, person(2))
        keys = [alice_made.key, bob_made.key, self.gone_key(whole, Kind.CONTACTS)]
        assert alices.in_scope(Kind.CONTACTS, keys) == {alice_made.key}
        assert bobs.in_scope(Kind.CONTACTS, keys) == {bob_made.key}
        assert whole.in_scope(Kind.CONTACTS, keys) == {alice_made.key, bob_made.key}
        # The profile's CRM user is the one the interface names so.
        assert self.open_backend(own_only=True).in_scope(Kind.CONTACTS, keys) \
            == {alice_made.key}
        # One organization: what one profile's CRM made, another's reads.
        assert self.fetched(bobs, Kind.CONTACTS, alice_made.key).version == alice_made.version

    def test_a_profiles_crm_holds_its_users_events_whatever_the_persons_scope(self) -> None:
        alices = self.open_profile("alice", "organization")
        alice_made = self.created(alices, Kind.CALENDAR, meeting(1))
        bob_made = self.created(self.open_profile("bob", "owned"), Kind.CALENDAR, meeting(2))
        keys = [alice_made.key, bob_made.key]
        assert alices.in_scope(Kind.CALENDAR, keys) == {alice_made.key}
        assert self.open_profile("alice", "owned").in_scope(Kind.CALENDAR, keys) \
            == {alice_made.key}
        assert self.open_backend("bob").in_scope(Kind.CALENDAR, keys) == {bob_made.key}
        window = (dt.datetime(2030, 3, 1, tzinfo=dt.UTC), dt.datetime(2030, 4, 1, tzinfo=dt.UTC))
        assert alices.events_in_window(*window) == [alice_made.key]

    def test_a_branch_profiles_crm_holds_the_persons_of_its_branch(self) -> None:
        if Capability.CLASSIFICATION not in self.backend_class.capabilities:
            pytest.skip("this kind of CRM has no classification tree to choose a branch of")
        customers = self.make_branch("Zákazníci")
        moravia = self.make_branch("Morava", parent=customers)
        in_moravia = self.created(self.open_backend(branch=moravia), Kind.CONTACTS, person(1))
        outside = self.created(self.open_backend(), Kind.CONTACTS, person(2))
        branch = self.open_profile("bob", "branch", customers)
        assert branch.in_scope(Kind.CONTACTS, [in_moravia.key, outside.key]) \
            == {in_moravia.key}
        made = self.created(branch, Kind.CONTACTS, person(3))   # kept inside the branch
        assert branch.in_scope(Kind.CONTACTS, [made.key]) == {made.key}

    def test_a_report_reads_every_record_of_the_organization(self) -> None:
        mine = self.created(self.open_backend(own_only=True), Kind.CONTACTS, person(1))
        theirs = self.created(self.open_backend("bob", own_only=True), Kind.CONTACTS,
                              person(2))
        event = self.created(self.open_backend("bob"), Kind.CALENDAR, meeting(1))
        report = self.open_organization()
        assert set(report.fetch(Kind.CONTACTS, [mine.key, theirs.key])) \
            == {mine.key, theirs.key}
        assert set(report.summaries(Kind.CALENDAR, [event.key])) == {event.key}
        assert report.find_by_email(["jana2@acme.example"]) == {
            "jana2@acme.example": [theirs.key]}

    def test_test_connection_answers_in_words(self) -> None:
        diagnosis = self.backend_class.diagnose(self.connection())
        assert isinstance(diagnosis, CrmDiagnosis)
        assert diagnosis.ok, diagnosis.message   # the test organization has its CRM users
        assert isinstance(diagnosis.message, str) and diagnosis.message.strip()

    def test_the_kind_declares_what_the_admin_shows(self) -> None:
        assert str(self.backend_class.label).strip()
        assert self.backend_class.capabilities <= frozenset(Capability)
        # What it cannot hold: fields of the records, in agreement with its capabilities.
        for kind, record in ((Kind.CONTACTS, ContactRecord()), (Kind.CALENDAR, EventRecord())):
            assert self.backend_class.unheld(kind) <= set(canonical(record)), kind
        assert disagreements(self.backend_class) == []
        names = [f.name for f in self.backend_class.settings_fields]
        assert len(names) == len(set(names)), names

    # --- organizations ----------------------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_another_organization_sees_none_of_the_records(self, kind: Kind) -> None:
        elsewhere = self.open_elsewhere()
        cursor = elsewhere.current_cursor()
        backend = self.open_backend()
        self.created(backend, kind, sample(kind, 1), origin="AAMk-1")
        assert list(elsewhere.changes_since(kind, cursor)) == []
        assert elsewhere.find_by_origin(kind, ["AAMk-1"]) == {}
        assert elsewhere.find_by_email(["jana1@acme.example"]) == {"jana1@acme.example": []}
        assert elsewhere.find_by_uid(["meeting-1@example.com"]) == {}
        window = (dt.datetime(2030, 3, 1, tzinfo=dt.UTC), dt.datetime(2030, 4, 1, tzinfo=dt.UTC))
        assert elsewhere.events_in_window(*window) == []

