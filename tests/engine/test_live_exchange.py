"""The EWS backend against a real Exchange server, when one is configured.

Set EXCHANGE_TEST_URL (the EWS URL), EXCHANGE_TEST_USER, EXCHANGE_TEST_PASSWORD and
EXCHANGE_TEST_MAILBOX (a test mailbox: these tests create and delete a contact in it), and
optionally EXCHANGE_TEST_AUTH (ntlm or basic; default ntlm) and EXCHANGE_TEST_IMPERSONATE=1.
Without them the tests are skipped: no Exchange server runs where the suite usually runs.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from engine.mailbox.base import Auth, ChangeType, MailboxAccess, Update
from engine.mailbox.ews import EwsMailbox
from engine.records import ContactRecord, Kind

REQUIRED = ("EXCHANGE_TEST_URL", "EXCHANGE_TEST_USER", "EXCHANGE_TEST_PASSWORD",
            "EXCHANGE_TEST_MAILBOX")
missing = [name for name in REQUIRED if not os.environ.get(name)]
pytestmark = pytest.mark.skipif(
    bool(missing), reason=f"no real Exchange configured ({', '.join(missing)} not set)")


@pytest.fixture
def live() -> EwsMailbox:
    access = MailboxAccess(
        mailbox=os.environ.get("EXCHANGE_TEST_MAILBOX", ""),
        endpoint=os.environ.get("EXCHANGE_TEST_URL", ""),
        auth=Auth(os.environ.get("EXCHANGE_TEST_AUTH", "ntlm")),
        username=os.environ.get("EXCHANGE_TEST_USER", ""),
        secret=os.environ.get("EXCHANGE_TEST_PASSWORD", ""),
        impersonate=os.environ.get("EXCHANGE_TEST_IMPERSONATE") == "1")
    return EwsMailbox(access)


def test_it_signs_in_and_lists_folders(live: EwsMailbox) -> None:
    with live:
        assert live.check().version
        assert any(f.path.endswith("Contacts") for f in live.list_folders(Kind.CONTACTS))


def test_a_contact_round_trips_and_shows_up_as_a_change(live: EwsMailbox) -> None:
    stamp = f"live-test:{uuid.uuid4()}"
    with live:
        folder = live.get_folder("contacts", Kind.CONTACTS)
        state = [p.state for p in live.read_changes(folder, None)][-1]
        (created,) = live.create(folder, [ContactRecord(
            first_name="Live", last_name="Test", email1="live.test@example.com", stamp=stamp)])
        assert created.ok and created.ref is not None
        try:
            assert live.find_by_stamp(folder, [stamp])[stamp].id == created.ref.id
            record = ContactRecord(first_name="Live", last_name="Tested",
                                   email1="live.test@example.com", stamp=stamp)
            (updated,) = live.update(Kind.CONTACTS, [Update(created.ref, record,
                                                            frozenset({"last_name"}))])
            assert updated.ok
            changes = [c for p in live.read_changes(folder, state) for c in p.changes]
            assert any(c.type is ChangeType.UPSERT and c.ref.id == created.ref.id
                       for c in changes)
        finally:
            live.delete(Kind.CONTACTS, [created.ref])


def test_the_calendar_window_reads(live: EwsMailbox) -> None:
    now = dt.datetime.now(dt.UTC)
    with live:
        folder = live.get_folder("calendar", Kind.CALENDAR)
        events = list(live.read_window(folder, now - dt.timedelta(days=14),
                                       now + dt.timedelta(days=31)))
        assert all(record.kind in ("single", "master") for _, record in events)
