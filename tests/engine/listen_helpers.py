"""Watching the listener and ewsim's notification hub from listener tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError

from crm.models import CrmUser
from engine.listen import Listener
from ewsim.testing import SimHandle
from profiles.models import MailboxConnection, SyncProfile

Queued = list[tuple[int, str]]


def until(condition: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OperationalError as exc:
            # The test database in memory (SQLite, shared cache) refuses a read while the
            # listener's thread writes the same table, where a file would wait: read again.
            if "locked" not in str(exc):
                raise
        time.sleep(0.05)
    raise AssertionError(f"not within {limit} s: {what}")


def streamed(sim: SimHandle) -> dict[str, int]:
    """Mailbox -> stream token of each subscription an open GetStreamingEvents holds."""
    hub = sim.server.store.notifications
    with sim.server.store.lock:
        return {s.mailbox: s.stream_token for s in hub.subscriptions.values()
                if s.kind == "streaming" and s.expires_at is None}


def streamed_folders(sim: SimHandle, mailbox: str) -> set[str]:
    """The folder ids the mailbox's streamed subscriptions cover (ewsim's own ids)."""
    hub = sim.server.store.notifications
    with sim.server.store.lock:
        return {folder_id for s in hub.subscriptions.values()
                if s.mailbox == mailbox and s.kind == "streaming" and s.expires_at is None
                for folder_id in s.folder_ids or ()}


def queued_for(queued: Queued, profile: SyncProfile, agenda: str = "contacts") -> bool:
    return (profile.pk, agenda) in queued


def profile_on(connection: MailboxConnection, mailbox: str, password: str = "") -> SyncProfile:
    """A profile of `mailbox` on this connection (its own credentials if a password is given)."""
    login = mailbox.split("@")[0]
    user = User.objects.create_user(login, mailbox, "pw")
    crm_user = CrmUser.objects.create(organization=connection.organization, name=login.title(),
                                      login=login)
    profile = SyncProfile(organization=connection.organization, user=user, mailbox=mailbox,
                          crm_user=crm_user, connection=connection,
                          mailbox_username=mailbox if password else "")
    if password:
        profile.set_mailbox_secret(password)
    profile.save()
    return profile


def new_contact(sim: SimHandle, mailbox: str, folder: str = "contacts") -> None:
    sim.control.create_item(mailbox, folder=folder, tag="Contact",
                            xml="<t:Contact><t:DisplayName>New</t:DisplayName></t:Contact>")


@pytest.fixture
def listen(ewsim: SimHandle) -> Iterator[Callable[..., tuple[Listener, Queued]]]:
    """Start a listener that records what it would queue; stopped after the test."""
    listeners: list[Listener] = []

    def start(minute_seconds: float = 20.0, refresh: float = 60.0,
              minutes: int = 1) -> tuple[Listener, Queued]:
        queued: Queued = []
        ewsim.control.settings(notification_minute_seconds=minute_seconds)
        listener = Listener(lambda profile, agenda: queued.append((profile.pk, agenda)),
                            debounce=0.2, crm_poll=0.1, minutes=minutes, refresh=refresh)
        listeners.append(listener)
        threading.Thread(target=listener.run, daemon=True).start()
        return listener, queued

    yield start
    for listener in listeners:
        listener.stop.set()
