"""Streaming notifications: the backend reports which watched folder changed."""

from __future__ import annotations

import threading
import time

from engine.mailbox.base import FolderInfo, MailboxAccess, WatchReport, WatchTarget
from engine.mailbox.ews import EwsMailbox
from engine.records import ContactRecord, Kind
from ewsim.testing import SimHandle

from .conftest import access_to


def test_a_change_in_a_watched_folder_is_reported_within_a_second(ewsim: SimHandle) -> None:
    ewsim.control.call("POST", "settings", {"notification_minute_seconds": 1.5})
    access = access_to(ewsim)

    def another_client() -> None:
        time.sleep(0.3)
        with EwsMailbox(access) as writer:
            writer.create(writer.get_folder("contacts", Kind.CONTACTS),
                          [ContactRecord(first_name="New")])

    started = time.monotonic()
    seen: list[tuple[float, set[str]]] = []
    with EwsMailbox(access) as watcher:
        folders = [watcher.get_folder("contacts", Kind.CONTACTS),
                   watcher.get_folder("calendar", Kind.CALENDAR)]
        threading.Thread(target=another_client).start()
        for changed in watcher.watch(folders, minutes=1):
            seen.append((time.monotonic() - started, changed))
    assert seen and seen[0][1] == {"contacts"} and seen[0][0] < 1.3
    assert time.monotonic() - started < 5          # the connection closed on time


def test_watch_many_streams_several_mailboxes_through_one_request(ewsim: SimHandle) -> None:
    ewsim.control.call("POST", "settings", {"notification_minute_seconds": 1.0})
    ewsim.control.add_user("svc@example.com", "svc-secret", can_impersonate=["*"])
    ewsim.control.add_user("bob@example.com", "bob-secret")

    def as_service(mailbox: str) -> MailboxAccess:
        return access_to(ewsim, mailbox=mailbox, username="svc@example.com",
                         secret="svc-secret", impersonate=True)

    contacts = FolderInfo("contacts", "Contacts", Kind.CONTACTS)
    targets = [WatchTarget(1, as_service(ewsim.user), (contacts,)),
               WatchTarget(2, as_service("bob@example.com"), (contacts,)),
               WatchTarget(3, as_service("nobody@example.com"), (contacts,))]
    timer = threading.Timer(0.3, lambda: ewsim.control.create_item(
        "bob@example.com", folder="contacts", tag="Contact",
        xml="<t:Contact><t:DisplayName>New</t:DisplayName></t:Contact>"))
    reports: list[WatchReport] = []
    with EwsMailbox(targets[0].access) as watcher:
        timer.start()
        reports.extend(watcher.watch_many(targets, minutes=1))
        assert [r.failed.keys() for r in reports if r.failed] == [{3}]   # the others go on
        assert {2: {"contacts"}} in [r.changed for r in reports]
        counters = ewsim.control.counters()
        assert counters["GetStreamingEvents"] == 1 and counters["Subscribe"] == 2
        # Called again, the subscriptions are reused; a target left out is unsubscribed.
        list(watcher.watch_many(targets[:1], minutes=1))
        counters = ewsim.control.counters()
        assert counters["Subscribe"] == 2 and counters["Unsubscribe"] == 1
    assert ewsim.control.counters()["Unsubscribe"] == 2   # closing ends the rest
