"""The listener watches the profiles of one connection together: one stream per group.

Against ewsim over HTTP; the stream count comes from ewsim's request counters and its
notification hub (which subscriptions a GetStreamingEvents connection holds)."""

from __future__ import annotations

import time

import pytest

from engine.mailbox.ews import EwsMailbox
from ewsim.testing import SimHandle
from profiles.models import MailboxConnection, Organization, SyncProfile

from .listen_helpers import new_contact, profile_on, queued_for, streamed, until
from .sync_helpers import SERVICE, SERVICE_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

BOB, CAROL, GHOST = "bob@example.com", "carol@example.com", "ghost@example.com"


# --- building profiles --------------------------------------------------------------------
def _organization() -> Organization:
    return Organization.objects.get_or_create(name="Acme")[0]


def _connection(sim: SimHandle, *, per_user: bool = False) -> MailboxConnection:
    organization = _organization()
    connection = MailboxConnection(
        organization=organization, name="per user" if per_user else "service account",
        ews_url=sim.url, auth_type="basic",
        access=MailboxConnection.Access.PER_USER if per_user
        else MailboxConnection.Access.IMPERSONATION,
        username="" if per_user else SERVICE)
    if not per_user:
        sim.control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
        connection.set_secret(SERVICE_PASSWORD)
    connection.save()
    return connection


def _add_mailbox(sim: SimHandle, address: str, password: str = "secret") -> None:
    sim.control.add_user(address, password)


def _subscription_of(sim: SimHandle, mailbox: str) -> str:
    hub = sim.server.store.notifications
    with sim.server.store.lock:
        return next(s.id for s in hub.subscriptions.values() if s.mailbox == mailbox)


# --- the tests ------------------------------------------------------------------------------
def test_profiles_of_one_connection_share_one_stream(ewsim: SimHandle, listen) -> None:  # type: ignore[no-untyped-def]
    for address in (BOB, CAROL):
        _add_mailbox(ewsim, address)
    connection = _connection(ewsim)
    profiles = [profile_on(connection, address) for address in (ewsim.user, BOB, CAROL)]
    _, queued = listen()
    until(lambda: len(streamed(ewsim)) == 3, "all three mailboxes streamed")
    counters = ewsim.control.counters()
    assert counters["GetStreamingEvents"] == 1 and counters["Subscribe"] == 3
    for profile in profiles:
        new_contact(ewsim, profile.mailbox)
        until(lambda profile=profile: queued_for(queued, profile),
              f"a contacts sync of {profile.mailbox}")
    time.sleep(0.5)   # nothing else comes: each change queued exactly its own profile
    assert sorted(queued) == sorted((p.pk, "contacts") for p in profiles)
    assert ewsim.control.counters()["GetStreamingEvents"] == 1


def test_a_profile_added_while_listening_joins_the_stream(ewsim: SimHandle, listen) -> None:  # type: ignore[no-untyped-def]
    _add_mailbox(ewsim, BOB)
    connection = _connection(ewsim)
    profile_on(connection, ewsim.user)
    _, queued = listen(minute_seconds=2.0, refresh=0.3)   # keep-alives every second
    until(lambda: set(streamed(ewsim)) == {ewsim.user}, "Alice streamed")
    first = _subscription_of(ewsim, ewsim.user)
    bob = profile_on(connection, BOB)
    until(lambda: set(streamed(ewsim)) == {ewsim.user, BOB}, "Bob joined the stream")
    new_contact(ewsim, BOB)
    until(lambda: queued_for(queued, bob), "a contacts sync of Bob")
    # Alice kept her subscription: only Bob's was made.
    assert _subscription_of(ewsim, ewsim.user) == first
    assert ewsim.control.counters()["Subscribe"] == 2


def test_a_profile_that_leaves_is_unsubscribed(ewsim: SimHandle, listen) -> None:  # type: ignore[no-untyped-def]
    _add_mailbox(ewsim, BOB)
    connection = _connection(ewsim)
    alice, bob = profile_on(connection, ewsim.user), profile_on(connection, BOB)
    _, queued = listen(minute_seconds=2.0, refresh=0.3)
    until(lambda: set(streamed(ewsim)) == {ewsim.user, BOB}, "both streamed")
    before = streamed(ewsim)[ewsim.user]
    SyncProfile.objects.filter(pk=bob.pk).update(active=False)

    def alice_alone_on_a_new_stream() -> bool:
        # Until the new stream holds her subscription, the old one (which the listener has
        # left) may still; the event is made once the new stream has it, so that this test
        # checks the new stream (events kept for the next stream: test_listen_affinity.py).
        now = streamed(ewsim)
        return now.keys() == {ewsim.user} and now[ewsim.user] != before

    until(alice_alone_on_a_new_stream, "Bob left the stream")
    new_contact(ewsim, ewsim.user)
    until(lambda: queued_for(queued, alice), "a contacts sync of Alice")
    hub = ewsim.server.store.notifications
    assert {s.mailbox for s in hub.subscriptions.values()} == {ewsim.user}


def test_a_subscription_exchange_forgot_is_made_again(ewsim: SimHandle, listen) -> None:  # type: ignore[no-untyped-def]
    _add_mailbox(ewsim, BOB)
    connection = _connection(ewsim)
    profile_on(connection, ewsim.user)
    bob = profile_on(connection, BOB)
    _, queued = listen(minute_seconds=1.0)   # the stream reconnects every second
    until(lambda: set(streamed(ewsim)) == {ewsim.user, BOB}, "both streamed")
    forgotten = _subscription_of(ewsim, BOB)
    ewsim.server.store.notifications.remove(forgotten)   # expired, as far as the client knows
    # The next GetStreamingEvents names it: ErrorInvalidSubscription for that id alone.
    until(lambda: BOB in streamed(ewsim), "Bob subscribed again")
    assert _subscription_of(ewsim, BOB) != forgotten
    new_contact(ewsim, BOB)
    until(lambda: queued_for(queued, bob), "a contacts sync of Bob")
    assert ewsim.control.counters()["Subscribe"] == 3


def test_a_mailbox_that_does_not_exist_does_not_stop_the_others(ewsim: SimHandle,
                                                                  listen) -> None:  # type: ignore[no-untyped-def]
    _add_mailbox(ewsim, BOB)
    connection = _connection(ewsim)
    # The missing mailbox sorts first: it would have been the group's anchor.
    ghost = profile_on(connection, "aaron@example.com")
    alice, bob = profile_on(connection, ewsim.user), profile_on(connection, BOB)
    _, queued = listen()
    until(lambda: set(streamed(ewsim)) == {ewsim.user, BOB}, "the others streamed")
    for profile in (alice, bob):
        new_contact(ewsim, profile.mailbox)
        until(lambda profile=profile: queued_for(queued, profile),
              f"a contacts sync of {profile.mailbox}")
    assert not any(pk == ghost.pk for pk, _ in queued)
    assert ewsim.control.counters()["GetStreamingEvents"] == 1


def test_a_mailbox_created_later_is_watched_on_a_retry(ewsim: SimHandle, listen,
                                                       monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("engine.listen.FIRST_BACKOFF", 0.5)
    connection = _connection(ewsim)
    profile_on(connection, ewsim.user)
    late = profile_on(connection, GHOST)
    _, queued = listen(minute_seconds=2.0)
    until(lambda: set(streamed(ewsim)) == {ewsim.user}, "Alice streamed")
    _add_mailbox(ewsim, GHOST)   # the mailbox appears: its retry succeeds
    until(lambda: GHOST in streamed(ewsim), "the new mailbox streamed")
    new_contact(ewsim, GHOST)
    until(lambda: queued_for(queued, late), "a contacts sync of the new mailbox")


def test_profiles_with_their_own_credentials_get_a_stream_each(ewsim: SimHandle,
                                                               listen) -> None:  # type: ignore[no-untyped-def]
    _add_mailbox(ewsim, BOB, "bob-secret")
    connection = _connection(ewsim, per_user=True)
    alice = profile_on(connection, ewsim.user, ewsim.password)
    bob = profile_on(connection, BOB, "bob-secret")
    _, queued = listen()
    until(lambda: len(streamed(ewsim)) == 2, "both mailboxes streamed")
    assert ewsim.control.counters()["GetStreamingEvents"] == 2
    hub = ewsim.server.store.notifications
    assert {s.owner for s in hub.subscriptions.values()} == {ewsim.user, BOB}
    for profile in (alice, bob):
        new_contact(ewsim, profile.mailbox)
        until(lambda profile=profile: queued_for(queued, profile),
              f"a contacts sync of {profile.mailbox}")


def test_a_connection_with_more_mailboxes_than_a_group_holds_gets_more_streams(
        ewsim: SimHandle, listen, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(EwsMailbox, "watch_group_size", 2)
    for address in (BOB, CAROL):
        _add_mailbox(ewsim, address)
    connection = _connection(ewsim)
    profiles = [profile_on(connection, address) for address in (ewsim.user, BOB, CAROL)]
    _, queued = listen()
    until(lambda: len(streamed(ewsim)) == 3, "all three mailboxes streamed")
    assert ewsim.control.counters()["GetStreamingEvents"] == 2
    for profile in profiles:
        new_contact(ewsim, profile.mailbox)
        until(lambda profile=profile: queued_for(queued, profile),
              f"a contacts sync of {profile.mailbox}")
