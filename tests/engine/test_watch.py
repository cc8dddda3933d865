"""Streaming notifications: the backend reports which watched folder changed."""

from __future__ import annotations

import threading
import time

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
