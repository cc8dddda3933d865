"""What every mailbox backend promises, as tests written against `MailboxBackend` alone.

A backend's test module subclasses `MailboxContract` (as a `Test…` class) and implements its few
hooks: open a backend on an empty test mailbox, make a sub-folder, act as another client
(create, edit, delete, move an item out of band), deliver a raw e-mail, and list the meeting
requests the server sent. Nothing below names EWS, so a Graph backend runs the same tests.

The mailbox is fresh for every test: the hooks' fixture is expected to empty it.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import email
import email.policy
import io
import random
from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from engine.mailbox.base import (
    Category,
    ChangePage,
    ChangeType,
    FolderInfo,
    FolderNotFound,
    ItemError,
    ItemRef,
    MailboxBackend,
    MailboxError,
    Sought,
    Update,
    WriteStatus,
)
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
)

KINDS = [Kind.CONTACTS, Kind.CALENDAR, Kind.MAIL]
WELL_KNOWN = {Kind.CONTACTS: "contacts", Kind.CALENDAR: "calendar", Kind.MAIL: "inbox"}
DEFAULT_PATH = {Kind.CONTACTS: "Contacts", Kind.CALENDAR: "Calendar", Kind.MAIL: "Inbox"}
PAGE = 100
MB = 1024 * 1024

# A field "another client" edits, and a different one the backend updates: an update that
# sends only its own field must leave the other client's edit in place.
EDITED_ELSEWHERE = {Kind.CONTACTS: "company", Kind.CALENDAR: "location", Kind.MAIL: "subject"}
OWN_CHANGE: dict[Kind, tuple[str, object]] = {
    Kind.CONTACTS: ("job_title", "Head of Sales"),
    Kind.CALENDAR: ("subject", "Renamed by the sync"),
    Kind.MAIL: ("categories", ("Followed up",)),
}
EVENT_FIELDS = ("subject", "start", "end", "time_zone", "all_day", "location", "body", "private",
                "categories", "attendees", "recurrence")
MESSAGE_FIELDS = ("subject", "body_text", "categories")


# --- records to write -----------------------------------------------------------------------
def at(day: str, hour: int = 0, minute: int = 0, zone: str = "Europe/Prague") -> dt.datetime:
    """A wall-clock time in `zone`, as the aware UTC datetime records hold."""
    local = dt.datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=ZoneInfo(zone))
    return local.astimezone(dt.UTC)


def contact(i: int) -> ContactRecord:
    """A card with every synced field filled, diacritics and a multi-line note included."""
    return ContactRecord(
        title="Ing.", first_name=f"Jana{i}", middle_name="Marie", last_name=f"Nováková{i}",
        suffix="Jr.", display_name=f"Ing. Jana{i} Nováková{i}", company="Acme s.r.o.",
        job_title="Engineer", department="Research & Development",
        web_page="https://acme.example/", email1=f"jana{i}@acme.example",
        email2=f"jana{i}@home.example", email3=f"jana{i}@other.example",
        business_address=PostalAddress("Hlavní 1", "Praha", "Praha", "110 00", "Czechia"),
        home_address=PostalAddress("Domácí 2", "Brno", "Jihomoravský", "602 00", "Czechia"),
        other_address=PostalAddress("Jiná 3", "Ostrava", "Moravskoslezský", "702 00", "Czechia"),
        phone_business="+420 111 111 111", phone_business2="+420 222 222 222",
        phone_home="+420 333 333 333", phone_mobile="+420 777 777 777",
        phone_business_fax="+420 444 444 444", phone_other="+420 555 555 555",
        note=f"First line of note {i}\nSecond line", categories=("Hotline", "Instalace"),
        stamp=f"crm-contact-{i}")


def event(i: int) -> EventRecord:
    """One of five shapes: a meeting, an all-day event, and three kinds of series."""
    common = {"subject": f"Event {i}", "location": f"Room {i}", "body": f"Agenda {i}",
              "categories": ("Instalace",), "stamp": f"crm-event-{i}"}
    match i % 5:
        case 0:
            return EventRecord(
                start=at("2030-03-05", 10), end=at("2030-03-05", 11, 30),
                time_zone="Europe/Prague", private=True,
                attendees=(Attendee("bob@example.com", "Bob Example", True),
                           Attendee("carol@example.com", "Carol Example", False)), **common)
        case 1:
            return EventRecord(start=at("2030-03-05"), end=at("2030-03-06"),
                               time_zone="Europe/Prague", all_day=True, **common)
        case 2:
            return EventRecord(
                start=at("2030-03-04", 9), end=at("2030-03-04", 10), time_zone="Europe/Prague",
                recurrence=RecurrenceRule("weekly", 1, weekdays=("Monday",),
                                          start=dt.date(2030, 3, 4), count=10), **common)
        case 3:
            zone = "America/New_York"
            return EventRecord(
                start=at("2030-03-06", 8, zone=zone), end=at("2030-03-06", 8, 45, zone=zone),
                time_zone=zone,
                recurrence=RecurrenceRule("daily", 2, start=dt.date(2030, 3, 6),
                                          end=dt.date(2030, 3, 20)), **common)
        case _:
            return EventRecord(
                start=at("2030-03-12", 14), end=at("2030-03-12", 15), time_zone="Europe/Prague",
                recurrence=RecurrenceRule("relative_monthly", 1, weekdays=("Tuesday",),
                                          week_index="Second", start=dt.date(2030, 3, 12)),
                **common)


def message(i: int) -> MessageRecord:
    return MessageRecord(subject=f"Message {i}", body_text=f"Body of message {i}",
                         categories=("CRM",), stamp=f"crm-message-{i}")


SAMPLES = {Kind.CONTACTS: contact, Kind.CALENDAR: event, Kind.MAIL: message}


def sample(kind: Kind, i: int) -> Record:
    return SAMPLES[kind](i)


def label(record: Record | None) -> str:
    """What another client names an item by: a contact's display name, else the subject."""
    if isinstance(record, ContactRecord):
        return record.shown_name()
    assert isinstance(record, EventRecord | MessageRecord)
    return record.subject


def synced_view(kind: Kind, record: Record | None) -> dict[str, object]:
    """The fields a write must round-trip (server-made fields such as a UID left out)."""
    assert record is not None
    if kind is Kind.CONTACTS:
        return canonical(record)
    names = EVENT_FIELDS if kind is Kind.CALENDAR else MESSAGE_FIELDS
    return {name: canonical(record)[name] for name in names}


def foreign(kind: Kind) -> Record:
    """A record of another kind than the folder's: a backend cannot write it there."""
    return message(0) if kind is not Kind.MAIL else contact(0)


# --- reading helpers ------------------------------------------------------------------------
def read_all(backend: MailboxBackend, folder: FolderInfo, state: str | None = None,
             page_size: int = PAGE) -> list[ChangePage]:
    return list(backend.read_changes(folder, state, page_size=page_size))


def upserts(pages: Sequence[ChangePage]) -> dict[str, Record | None]:
    """Upserted records by item id, across pages."""
    return {c.ref.id: c.record for p in pages for c in p.changes if c.type is ChangeType.UPSERT}


def deletes(pages: Sequence[ChangePage]) -> set[str]:
    return {c.ref.id for p in pages for c in p.changes if c.type is ChangeType.DELETE}


def rich_mail(attachment: bytes, attached_subject: str = "") -> bytes:
    """A delivered e-mail: text and HTML bodies, a file, and optionally an attached e-mail."""
    msg = EmailMessage()
    msg["From"] = "Bob Example <bob@example.com>"
    msg["To"] = "Alice Example <alice@example.com>, Dan Example <dan@example.com>"
    msg["Cc"] = "Carol Example <carol@example.com>"
    msg["Subject"] = "Quarterly report"
    msg["Message-ID"] = "<report-1@example.com>"
    msg["Date"] = "Mon, 03 Mar 2025 09:30:00 +0100"
    msg.set_content("Hello Alice,\nthe report is attached.\n")
    msg.add_alternative("<p>Hello Alice,<br>the report is <b>attached</b>.</p>", subtype="html")
    msg.add_attachment(attachment, maintype="application", subtype="pdf",
                       filename="report.pdf")
    if attached_subject:
        inner = EmailMessage()
        inner["From"] = "Dan Example <dan@example.com>"
        inner["To"] = "Bob Example <bob@example.com>"
        inner["Subject"] = attached_subject
        inner["Message-ID"] = "<original-1@example.com>"
        inner.set_content("The original request.\n")
        msg.add_attachment(inner)
    return msg.as_bytes()


def mail_with_files(files: dict[str, bytes]) -> bytes:
    """A delivered e-mail with these file attachments, in this order."""
    msg = EmailMessage()
    msg["From"] = "bob@example.com"
    msg["To"] = "alice@example.com"
    msg["Subject"] = "Podklady"
    msg.set_content("Podklady v příloze.\n")
    for name, content in files.items():
        msg.add_attachment(content, maintype="application", subtype="octet-stream",
                           filename=name)
    return msg.as_bytes()


def plain_mail(subject: str, date: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "bob@example.com"
    msg["To"] = "alice@example.com"
    msg["Subject"] = subject
    msg["Date"] = date
    msg.set_content(f"{subject}.\n")
    return msg.as_bytes()


class MailboxContract(abc.ABC):
    """The tests; a backend's module supplies the hooks below in a `Test…` subclass."""

    # --- hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def open_backend(self) -> MailboxBackend:
        """A new, unopened backend on the (empty) test mailbox; each call a fresh object."""

    @abc.abstractmethod
    def make_folder(self, kind: Kind, name: str) -> str:
        """Create a sub-folder `name` of `kind` under that kind's default folder; its id."""

    @abc.abstractmethod
    def create_elsewhere(self, folder: FolderInfo, label: str) -> str:
        """As another client: create a minimal item in `folder` named `label`; its id."""

    @abc.abstractmethod
    def edit_elsewhere(self, kind: Kind, item_id: str, field: str, value: str) -> None:
        """As another client: set one record field (those of EDITED_ELSEWHERE) to `value`."""

    @abc.abstractmethod
    def delete_elsewhere(self, item_id: str) -> None:
        """As another client: delete the item for good."""

    @abc.abstractmethod
    def move_elsewhere(self, item_id: str, folder_id: str) -> None:
        """As another client: move the item into another folder."""

    @abc.abstractmethod
    def deliver(self, mime: bytes) -> None:
        """Deliver a raw e-mail into the Inbox, as mail from outside arrives."""

    @abc.abstractmethod
    def invitations_sent(self) -> list[str]:
        """Ids of items for which the server sent meeting invitations or cancellations."""

    @abc.abstractmethod
    def set_categories_elsewhere(self, categories: list[Category] | None) -> None:
        """As Outlook: save this master category list (None: the mailbox has none saved)."""

    # --- fixtures and helpers ---------------------------------------------------------------
    @pytest.fixture
    def backend(self) -> Iterator[MailboxBackend]:
        with self.open_backend() as backend:
            yield backend

    def default_folder(self, backend: MailboxBackend, kind: Kind) -> FolderInfo:
        return backend.get_folder(WELL_KNOWN[kind], kind)

    def sub_folder(self, backend: MailboxBackend, kind: Kind, name: str) -> FolderInfo:
        return backend.get_folder(self.make_folder(kind, name), kind)

    def created(self, backend: MailboxBackend, folder: FolderInfo,
                records: Sequence[Record]) -> list[ItemRef]:
        results = backend.create(folder, records)
        assert [r.status for r in results] == [WriteStatus.OK] * len(records), results
        refs = [r.ref for r in results]
        assert all(ref is not None and ref.id for ref in refs)
        return [ref for ref in refs if ref is not None]

    def fetched(self, backend: MailboxBackend, kind: Kind, ref: ItemRef) -> tuple[ItemRef, Record]:
        (result,) = backend.fetch(kind, [ref])
        assert not isinstance(result, ItemError), result
        return result

    # --- connection and folders -------------------------------------------------------------
    def test_check_names_the_server_version_and_the_mailbox(self,
                                                            backend: MailboxBackend) -> None:
        info = backend.check()
        assert info.version
        assert info.mailbox == backend.access.mailbox

    def test_the_master_category_list_comes_with_its_colours_sorted_by_name(
            self, backend: MailboxBackend) -> None:
        self.set_categories_elsewhere([
            Category("Registrace", "preset7"), Category("Hotline", "preset0"),
            Category("bez barvy", "none"), Category("Zákazník VIP", "preset24")])
        assert backend.categories() == [
            Category("bez barvy", "none"), Category("Hotline", "preset0"),
            Category("Registrace", "preset7"), Category("Zákazník VIP", "preset24")]

    def test_a_mailbox_without_a_saved_category_list_has_no_categories(
            self, backend: MailboxBackend) -> None:
        self.set_categories_elsewhere(None)
        assert backend.categories() == []

    @pytest.mark.parametrize("kind", KINDS)
    def test_list_folders_holds_the_default_folder_and_a_created_sub_folder(
            self, backend: MailboxBackend, kind: Kind) -> None:
        sub_id = self.make_folder(kind, "CRM")
        folders = backend.list_folders(kind)
        by_path = {f.path: f for f in folders}
        parent = by_path[DEFAULT_PATH[kind]]
        crm = by_path[f"{DEFAULT_PATH[kind]}/CRM"]
        assert crm.id == sub_id
        assert crm.parent_id == parent.id
        assert {f.kind for f in folders} == {kind}
        assert [f.path.lower() for f in folders] == sorted(f.path.lower() for f in folders)
        others = {f.path for k in KINDS if k is not kind for f in backend.list_folders(k)}
        assert DEFAULT_PATH[kind] not in others

    @pytest.mark.parametrize("kind", [Kind.CONTACTS, Kind.CALENDAR])
    def test_list_folders_offers_no_hidden_or_system_folders(
            self, backend: MailboxBackend, kind: Kind) -> None:
        # A real mailbox holds hidden folders of the kind or a subkind (under Contacts the
        # Recipient Cache, "IPF.Contact.RecipientCache", the GAL Contacts…; ExternalContacts,
        # hidden, "IPF.Contact", at the top): ewsim seeds them, and a user picks none of them.
        self.make_folder(kind, "CRM")
        assert [f.path for f in backend.list_folders(kind)] == [
            DEFAULT_PATH[kind], f"{DEFAULT_PATH[kind]}/CRM"]

    @pytest.mark.parametrize("kind", KINDS)
    def test_get_folder_accepts_a_well_known_name_and_an_id(
            self, backend: MailboxBackend, kind: Kind) -> None:
        default = self.default_folder(backend, kind)
        assert (default.kind, default.path) == (kind, DEFAULT_PATH[kind])
        sub_id = self.make_folder(kind, "CRM")
        sub = backend.get_folder(sub_id, kind)
        assert (sub.id, sub.kind, sub.path) == (sub_id, kind, f"{DEFAULT_PATH[kind]}/CRM")

    def test_get_folder_on_a_bogus_id_raises_folder_not_found(
            self, backend: MailboxBackend) -> None:
        with pytest.raises(FolderNotFound):
            backend.get_folder("AAMkAGI2TG93AAA=", Kind.CONTACTS)
        with pytest.raises(FolderNotFound):
            backend.get_folder("no such folder", Kind.CONTACTS)

    def test_get_folder_of_another_kind_raises_folder_not_found(
            self, backend: MailboxBackend) -> None:
        with pytest.raises(FolderNotFound):
            backend.get_folder(WELL_KNOWN[Kind.CALENDAR], Kind.CONTACTS)

    # --- reading changes --------------------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_reading_an_empty_folder_is_one_finished_page_without_changes(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.sub_folder(backend, kind, "Empty")
        (page,) = read_all(backend, folder)
        assert (page.changes, page.errors, page.done, page.restarted) == ([], [], True, False)
        assert page.state

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_full_read_returns_every_created_item_with_its_fields_in_pages(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        records = [sample(kind, i) for i in range(250)]
        refs = self.created(backend, folder, records)

        pages = read_all(backend, folder)
        assert len(pages) >= 3
        assert all(len(p.changes) <= PAGE and p.state and not p.errors for p in pages)
        assert [p.done for p in pages] == [False] * (len(pages) - 1) + [True]
        read = upserts(pages)
        assert set(read) == {ref.id for ref in refs}
        assert not deletes(pages)
        by_stamp = {r.stamp: r for r in read.values() if r is not None}
        assert len(by_stamp) == 250
        for record in records:
            assert synced_view(kind, by_stamp[record.stamp]) == synced_view(kind, record)

        (again,) = read_all(backend, folder, pages[-1].state)
        assert (again.changes, again.done) == ([], True)

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_read_from_the_stored_state_shows_changes_made_elsewhere(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        elsewhere = self.sub_folder(backend, kind, "Elsewhere")
        edited, deleted, moved = self.created(backend, folder, [sample(kind, i) for i in range(3)])
        state = read_all(backend, folder)[-1].state

        new_id = self.create_elsewhere(folder, "Made in Outlook")
        self.edit_elsewhere(kind, edited.id, EDITED_ELSEWHERE[kind], "Edited in Outlook")
        self.delete_elsewhere(deleted.id)
        self.move_elsewhere(moved.id, elsewhere.id)

        pages = read_all(backend, folder, state)
        assert pages[-1].done
        changed = upserts(pages)
        assert set(changed) == {new_id, edited.id}
        assert label(changed[new_id]) == "Made in Outlook"
        assert getattr(changed[edited.id], EDITED_ELSEWHERE[kind]) == "Edited in Outlook"
        assert deletes(pages) == {deleted.id, moved.id}
        (quiet,) = read_all(backend, folder, pages[-1].state)
        assert quiet.changes == []

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_garbage_state_restarts_the_read_and_returns_everything(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        refs = self.created(backend, folder, [sample(kind, i) for i in range(30)])
        pages = read_all(backend, folder, "bm90IGEgc3luYyBzdGF0ZQ==", page_size=20)
        assert pages[0].restarted
        assert not any(p.restarted for p in pages[1:])
        assert set(upserts(pages)) == {r.id for r in refs}
        assert pages[-1].done

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_crash_between_two_pages_loses_nothing_and_repeats_only_the_unsaved_page(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        refs = self.created(backend, folder, [sample(kind, i) for i in range(250)])
        reading = backend.read_changes(folder, None, page_size=PAGE)
        first = next(reading)
        second = next(reading)   # received, then the worker dies before checkpointing it
        reading.close()
        saved = set(upserts([first]))

        with self.open_backend() as restarted:
            resumed = read_all(restarted, folder, first.state)
        again = set(upserts(resumed))
        assert saved | again == {r.id for r in refs}
        assert not saved & again                 # nothing checkpointed comes twice
        assert set(upserts([second])) <= again    # the unsaved page may (must) come again
        assert sum(len(p.changes) for p in resumed) == 250 - len(saved)

    @pytest.mark.parametrize("kind", KINDS)
    def test_items_the_caller_knows_come_without_their_records(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        own, other = self.created(backend, folder, [sample(kind, 1), sample(kind, 2)])
        asked: list[ItemRef] = []

        def known(refs: list[ItemRef]) -> set[str]:
            asked.extend(refs)
            return {r.id for r in refs if r == own}   # the engine's own write, as it wrote it

        changed = upserts(list(backend.read_changes(folder, None, known=known)))
        assert set(changed) == {own.id, other.id}
        assert changed[own.id] is None and changed[other.id] is not None
        assert {r.id for r in asked} == {own.id, other.id}

    def test_mail_received_before_the_import_window_is_left_out(
            self, backend: MailboxBackend) -> None:
        self.deliver(plain_mail("Old news", "Wed, 01 Jan 2025 10:00:00 +0000"))
        self.deliver(plain_mail("Fresh news", "Mon, 03 Mar 2025 10:00:00 +0000"))
        folder = self.default_folder(backend, Kind.MAIL)
        window = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
        pages = list(backend.read_changes(folder, None, received_after=window))
        assert [label(r) for r in upserts(pages).values()] == ["Fresh news"]
        # Listed by the server and left unread (EWS), or not listed at all (Graph filters).
        left_out = [old for page in pages for old in page.left_out]
        assert [(old.title, old.received < window) for old in left_out] in (
            [("Old news", True)], [])

    # --- items gone from a folder -----------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_items_gone_from_a_folder_are_located_where_they_went(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        archive = self.sub_folder(backend, kind, "Archive")
        records = [sample(kind, i) for i in range(4)]
        refs = self.created(backend, folder, records)
        kept, moved, trashed, erased = refs
        state = read_all(backend, folder)[-1].state
        self.move_elsewhere(moved.id, archive.id)
        self.move_elsewhere(trashed.id, "deleteditems")
        self.delete_elsewhere(erased.id)
        assert deletes(read_all(backend, folder, state)) == {moved.id, trashed.id, erased.id}

        found = backend.locate(kind, [Sought(ref, record.stamp)
                                      for ref, record in zip(refs, records, strict=True)])
        assert (found[kept.id].folder_path, found[kept.id].deleted) == \
            (DEFAULT_PATH[kind], False)
        assert (found[moved.id].folder_path, found[moved.id].deleted) == \
            (f"{DEFAULT_PATH[kind]}/Archive", False)
        (now,) = [change.ref for page in read_all(backend, archive) for change in page.changes]
        assert found[moved.id].ref.id == now.id
        # In Deleted Items: said so, or not served at all (Graph's events); erased: not found.
        assert trashed.id not in found or found[trashed.id].deleted
        assert erased.id not in found
        assert backend.locate(kind, []) == {}

    def test_an_event_made_elsewhere_is_located_by_its_meeting_uid(
            self, backend: MailboxBackend) -> None:
        folder = self.default_folder(backend, Kind.CALENDAR)
        archive = self.sub_folder(backend, Kind.CALENDAR, "Archive")
        made = self.create_elsewhere(folder, "Made in Outlook")
        ref, record = self.fetched(backend, Kind.CALENDAR, ItemRef(made))
        assert isinstance(record, EventRecord) and record.uid and not record.stamp
        self.move_elsewhere(made, archive.id)

        found = backend.locate(Kind.CALENDAR, [Sought(ref, uid=record.uid)])
        assert (found[ref.id].folder_path, found[ref.id].deleted) == ("Calendar/Archive", False)

    def test_locating_many_items_costs_a_few_requests(self, backend: MailboxBackend) -> None:
        folder = self.default_folder(backend, Kind.CONTACTS)
        archive = self.sub_folder(backend, Kind.CONTACTS, "Archive")
        records = [sample(Kind.CONTACTS, i) for i in range(45)]
        refs = self.created(backend, folder, records)
        for ref in refs[::2]:
            self.move_elsewhere(ref.id, archive.id)

        before = backend.requests_made
        found = backend.locate(Kind.CONTACTS, [Sought(ref, record.stamp) for ref, record
                                               in zip(refs, records, strict=True)])
        assert backend.requests_made - before <= 6
        assert [found[ref.id].folder_path for ref in refs[:2]] == ["Contacts/Archive", "Contacts"]
        assert len(found) == 45

    # --- writing ----------------------------------------------------------------------------
    @pytest.mark.parametrize("kind", KINDS)
    def test_created_items_carry_their_stamp_and_are_found_by_it_in_batches(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        records = [sample(kind, i) for i in range(120)]
        refs = self.created(backend, folder, records)
        fetched = backend.fetch(kind, refs[:5])
        assert [f[1].stamp for f in fetched if not isinstance(f, ItemError)] == \
            [r.stamp for r in records[:5]]

        unknown = ["crm-unknown-1", "crm-unknown-2"]
        found = backend.find_by_stamp(folder, [*unknown, *(r.stamp for r in records)])
        assert set(found) == {r.stamp for r in records}
        assert {s: ref.id for s, ref in found.items()} == \
            {r.stamp: ref.id for r, ref in zip(records, refs, strict=True)}

    @pytest.mark.parametrize("kind", KINDS)
    def test_an_update_sends_only_the_changed_fields(self, backend: MailboxBackend,
                                                     kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        record = sample(kind, 7)
        (ref,) = self.created(backend, folder, [record])
        other = EDITED_ELSEWHERE[kind]
        self.edit_elsewhere(kind, ref.id, other, "Edited in Outlook")
        current, _ = self.fetched(backend, kind, ref)

        name, value = OWN_CHANGE[kind]
        changed = dataclasses.replace(record, **{name: value})   # still the old `other`
        (result,) = backend.update(kind, [Update(current, changed, frozenset({name}))])
        assert result.status is WriteStatus.OK, result
        assert result.ref is not None and result.ref.id == ref.id
        assert result.ref.version and result.ref.version != current.version

        after_ref, after = self.fetched(backend, kind, ref)
        assert getattr(after, name) == value
        assert getattr(after, other) == "Edited in Outlook"
        assert after_ref.version == result.ref.version

    @pytest.mark.parametrize("kind", KINDS)
    def test_an_update_with_a_stale_version_is_a_conflict_and_changes_nothing(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        record = sample(kind, 8)
        (stale,) = self.created(backend, folder, [record])
        self.edit_elsewhere(kind, stale.id, EDITED_ELSEWHERE[kind], "Edited in Outlook")
        name, value = OWN_CHANGE[kind]
        changed = dataclasses.replace(record, **{name: value})
        (result,) = backend.update(kind, [Update(stale, changed, frozenset({name}))])
        assert result.status is WriteStatus.CONFLICT, result
        _, after = self.fetched(backend, kind, stale)
        assert getattr(after, name) == getattr(record, name)
        assert getattr(after, EDITED_ELSEWHERE[kind]) == "Edited in Outlook"

    @pytest.mark.parametrize("kind", KINDS)
    def test_one_invalid_record_fails_alone_in_its_batch(self, backend: MailboxBackend,
                                                         kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        batch = [sample(kind, 1), foreign(kind), sample(kind, 2)]
        if kind is Kind.CALENDAR:
            good = event(3)
            batch += [dataclasses.replace(good, start=None),
                      dataclasses.replace(good, end=good.start - dt.timedelta(hours=1)),
                      good]
        results = backend.create(folder, batch)
        expected = [WriteStatus.OK, WriteStatus.ERROR, WriteStatus.OK]
        if kind is Kind.CALENDAR:
            expected += [WriteStatus.ERROR, WriteStatus.ERROR, WriteStatus.OK]
        assert [r.status for r in results] == expected, results
        assert all(r.message for r in results if r.status is WriteStatus.ERROR)
        found = backend.find_by_stamp(folder, [r.stamp for r in batch])
        assert len(found) == expected.count(WriteStatus.OK)

    @pytest.mark.parametrize("kind", KINDS)
    def test_deleted_items_are_gone_from_the_folder_and_recoverable(
            self, backend: MailboxBackend, kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        if kind is Kind.MAIL:   # mail deleted from the Inbox would be in Deleted Items itself
            folder = self.sub_folder(backend, kind, "Filed")
        records = [sample(kind, i) for i in range(3)]
        refs = self.created(backend, folder, records)
        state = read_all(backend, folder)[-1].state

        results = backend.delete(kind, refs)
        assert [r.status for r in results] == [WriteStatus.OK] * 3
        again = backend.delete(kind, refs)
        assert [r.status for r in again] == [WriteStatus.OK] * 3

        assert deletes(read_all(backend, folder, state)) == {r.id for r in refs}
        assert upserts(read_all(backend, folder)) == {}
        trash = backend.get_folder("deleteditems", Kind.MAIL)
        assert set(backend.find_by_stamp(trash, [r.stamp for r in records])) == \
            {r.stamp for r in records}

    def test_calendar_writes_never_send_invitations_or_cancellations(
            self, backend: MailboxBackend) -> None:
        folder = self.default_folder(backend, Kind.CALENDAR)
        meeting = event(0)
        assert meeting.attendees
        (ref,) = self.created(backend, folder, [meeting])
        more = dataclasses.replace(meeting, attendees=(
            *meeting.attendees, Attendee("dan@example.com", "Dan Example")))
        (updated,) = backend.update(Kind.CALENDAR, [Update(ref, more, frozenset({"attendees"}))])
        assert updated.ok, updated
        assert backend.delete(Kind.CALENDAR, [ref])[0].ok
        assert self.invitations_sent() == []

    def test_a_window_returns_singles_and_each_series_master_once(
            self, backend: MailboxBackend) -> None:
        folder = self.default_folder(backend, Kind.CALENDAR)
        single = EventRecord(subject="Single", start=at("2030-03-05", 10),
                             end=at("2030-03-05", 11), time_zone="Europe/Prague", stamp="single")
        moved = EventRecord(subject="Moved", start=at("2030-03-11", 13), end=at("2030-03-11", 14),
                            original_start=at("2030-03-11", 9), kind="exception")
        series = EventRecord(
            subject="Weekly", start=at("2030-03-04", 9), end=at("2030-03-04", 10),
            time_zone="Europe/Prague", stamp="series",
            recurrence=RecurrenceRule("weekly", weekdays=("Monday",), start=dt.date(2030, 3, 4),
                                      count=5),
            exceptions=[moved], deleted_occurrences=(at("2030-03-18", 9),))
        later = EventRecord(subject="Later", start=at("2030-06-03", 10), end=at("2030-06-03", 11),
                            time_zone="Europe/Prague", stamp="later")
        results = backend.create(folder, [single, series, later])
        assert all(r.ok and not r.message for r in results), results

        window = list(backend.read_window(folder, at("2030-03-01"), at("2030-04-01")))
        assert sorted(r.stamp for _, r in window) == ["series", "single"]
        assert len({ref.id for ref, _ in window}) == 2
        master = next(r for _, r in window if r.stamp == "series")
        assert master.kind == "master"
        assert [(e.original_start, e.subject, e.start) for e in master.exceptions] == \
            [(moved.original_start, "Moved", moved.start)]
        assert master.deleted_occurrences == (at("2030-03-18", 9),)

    def test_a_window_leaves_out_the_items_and_series_the_caller_holds(
            self, backend: MailboxBackend) -> None:
        folder = self.default_folder(backend, Kind.CALENDAR)
        meetings = [event(0), dataclasses.replace(event(5), stamp="other single")]
        series = [event(2), dataclasses.replace(event(7), stamp="other series")]
        held_single, _, held_series, _ = self.created(backend, folder, [*meetings, *series])
        _, master = self.fetched(backend, Kind.CALENDAR, held_series)
        assert isinstance(master, EventRecord) and master.uid

        window = list(backend.read_window(
            folder, at("2030-03-01"), at("2030-04-01"),
            known=lambda refs: {r.id for r in refs if r.id == held_single.id},
            known_series=lambda uids: {u for u in uids if u == master.uid}))
        assert sorted(r.stamp for _, r in window) == ["other series", "other single"]

    @pytest.mark.parametrize("kind", KINDS)
    def test_fetch_reports_a_missing_item_in_its_place(self, backend: MailboxBackend,
                                                       kind: Kind) -> None:
        folder = self.default_folder(backend, kind)
        first, gone, last = self.created(backend, folder, [sample(kind, i) for i in range(3)])
        self.delete_elsewhere(gone.id)
        results = backend.fetch(kind, [first, gone, last])
        assert [type(r) for r in results] == [tuple, ItemError, tuple]
        assert isinstance(results[1], ItemError) and results[1].ref == gone
        assert [r[0].id for r in (results[0], results[2]) if isinstance(r, tuple)] == \
            [first.id, last.id]

    @pytest.mark.parametrize("kind", [Kind.CONTACTS, Kind.CALENDAR])
    def test_an_id_the_server_cannot_parse_is_a_missing_item(self, backend: MailboxBackend,
                                                             kind: Kind) -> None:
        # Exchange answers ErrorInvalidIdMalformed for an id it cannot parse (Graph: 400 with
        # that code), where it answers ErrorItemNotFound for one that names nothing: an id
        # stored from another source names no item in this mailbox either.
        folder = self.default_folder(backend, kind)
        record = sample(kind, 1)
        (kept,) = self.created(backend, folder, [record])
        bogus = ItemRef("not an Exchange id", "")
        missing, found = backend.fetch(kind, [bogus, kept])
        assert isinstance(missing, ItemError) and missing.ref == bogus
        assert missing.code == "ErrorItemNotFound"
        assert not isinstance(found, ItemError)
        name, value = OWN_CHANGE[kind]
        changed = dataclasses.replace(record, **{name: value})
        (updated,) = backend.update(kind, [Update(bogus, changed, frozenset({name}))])
        assert updated.status is WriteStatus.NOT_FOUND, updated
        assert [r.status for r in backend.delete(kind, [bogus])] == [WriteStatus.OK]

    # --- photos and attachments -------------------------------------------------------------
    def test_a_contact_photo_is_set_read_and_removed(self, backend: MailboxBackend) -> None:
        folder = self.default_folder(backend, Kind.CONTACTS)
        (ref,) = self.created(backend, folder, [contact(1)])
        photo = b"\xff\xd8\xff\xe0" + random.Random(1).randbytes(4000) + b"\xff\xd9"
        assert backend.read_photo(ref) is None

        result = backend.set_photo(ref, photo)
        assert result.ok and result.token, result
        assert backend.read_photo(ref) == photo
        _, record = self.fetched(backend, Kind.CONTACTS, ref)
        assert isinstance(record, ContactRecord) and record.photo_token == result.token

        assert backend.set_photo(ref, None).ok
        assert backend.read_photo(ref) is None
        _, record = self.fetched(backend, Kind.CONTACTS, ref)
        assert isinstance(record, ContactRecord) and record.photo_token == ""

    def _delivered(self, backend: MailboxBackend, mime: bytes) -> tuple[ItemRef, MessageRecord]:
        self.deliver(mime)
        (page,) = read_all(backend, self.default_folder(backend, Kind.MAIL))
        (change,) = page.changes
        assert isinstance(change.record, MessageRecord)
        return change.ref, change.record

    def test_a_delivered_message_reads_back_with_addresses_bodies_and_attachments(
            self, backend: MailboxBackend) -> None:
        pdf = b"%PDF-1.4 " + random.Random(2).randbytes(3000)
        _, record = self._delivered(backend, rich_mail(pdf, attached_subject="Original request"))
        assert record.subject == "Quarterly report"
        assert record.message_id == "<report-1@example.com>"
        assert record.sender == Address("bob@example.com", "Bob Example")
        assert record.to == (Address("alice@example.com", "Alice Example"),
                             Address("dan@example.com", "Dan Example"))
        assert record.cc == (Address("carol@example.com", "Carol Example"),)
        assert "the report is attached." in record.body_text
        assert "<b>" not in record.body_text
        assert "<b>attached</b>" in record.body_html
        assert record.received is not None and record.received.tzinfo is not None
        files = [a for a in record.attachments if not a.is_item]
        items = [a for a in record.attachments if a.is_item]
        assert [(a.name, a.content_type, a.size, a.is_inline) for a in files] == \
            [("report.pdf", "application/pdf", len(pdf), False)]
        assert len(items) == 1 and all(a.ref for a in record.attachments)

    def test_a_file_attachment_streams_in_chunks_equal_to_the_original(
            self, backend: MailboxBackend) -> None:
        data = random.Random(3).randbytes(5 * MB)
        ref, record = self._delivered(backend, rich_mail(data))
        (attachment,) = record.attachments
        chunks = []
        with backend.open_attachment(ref, attachment.ref) as stream:
            while chunk := stream.read(MB // 4):
                assert len(chunk) <= MB // 4
                chunks.append(chunk)
        assert len(chunks) > 1
        assert b"".join(chunks) == data

    def test_small_attachments_are_read_together_and_a_missing_one_fails_alone(
            self, backend: MailboxBackend) -> None:
        files = {"report.pdf": b"%PDF-1.4 " + random.Random(4).randbytes(20_000),
                 "notes.txt": "Poznámky k nabídce\n".encode(), "empty.txt": b""}
        ref, record = self._delivered(backend, mail_with_files(files))
        by_name = {a.name: a.ref for a in record.attachments}
        asked = [by_name["report.pdf"], "AAMkAGNvbnRyYWN0LW5vLXN1Y2gtYXR0YWNobWVudA==",
                 by_name["notes.txt"], by_name["empty.txt"]]
        before = backend.requests_made
        results = backend.read_attachments([(ref, attachment) for attachment in asked])
        assert backend.requests_made - before == 1   # all four in one request
        assert results[0] == files["report.pdf"]
        assert isinstance(results[1], MailboxError)
        assert results[2:] == [files["notes.txt"], b""]

    def test_what_the_reader_of_an_attachment_raises_reaches_it_as_raised(
            self, backend: MailboxBackend) -> None:
        # A full share while saving is the share's fault: not a MailboxError blaming Exchange.
        ref, record = self._delivered(backend, rich_mail(b"%PDF" * 1000, "Original request"))
        file, item = (next(a for a in record.attachments if a.is_item is kind)
                      for kind in (False, True))

        class ShareFull(OSError):
            pass

        class FullSink(io.BytesIO):
            def write(self, data: object) -> int:
                raise ShareFull("No space left on device")

        with pytest.raises(ShareFull), backend.open_attachment(ref, file.ref) as stream:
            FullSink().write(stream.read(1000))
        with pytest.raises(ShareFull):
            backend.write_item_attachment(ref, item.ref, FullSink())

    def test_an_attached_email_is_written_as_mime(self, backend: MailboxBackend) -> None:
        ref, record = self._delivered(backend, rich_mail(b"%PDF", "Original request"))
        (attached,) = [a for a in record.attachments if a.is_item]
        sink = io.BytesIO()
        written = backend.write_item_attachment(ref, attached.ref, sink)
        assert written == len(sink.getvalue()) > 0
        parsed = email.message_from_bytes(sink.getvalue(), policy=email.policy.default)
        assert parsed["Subject"] == "Original request"
        assert parsed["Message-ID"] == "<original-1@example.com>"
        body = parsed.get_body(preferencelist=("plain",))
        assert body is not None and "The original request." in body.get_content()
