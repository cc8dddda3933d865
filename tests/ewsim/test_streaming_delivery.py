"""GetStreamingEvents: an event counts as delivered only once written to a client still there.

Microsoft, "Stream notifications about mailbox events by using EWS in Exchange" and
"Notification subscriptions, mailbox events, and EWS in Exchange" (learn.microsoft.com,
EWS): a streaming subscription outlives its connections (it expires 30 minutes after the
last one closes) and its events are kept in the mailbox's event queue until delivered, so a
client that reconnects gets what happened while it was away. ewsim used to write the next
event into a connection the client had closed and count it as delivered.
"""

from __future__ import annotations

import time

from exchangelib.properties import CreatedEvent

from ewsim.testing import SimHandle

from .streaming_helpers import open_stream, read_until_closed, wait_detached

MINUTE = 5.0   # seconds per "minute": no heartbeat (every half minute) during a test


def _next_events(account, sub_id: str) -> list:  # type: ignore[no-untyped-def]
    """The first notification of a new stream (which the client then closes itself)."""
    for notification in account.inbox.get_streaming_events(sub_id, connection_timeout=1,
                                                            max_notifications_returned=1):
        return list(notification.events)
    return []


def test_an_event_after_the_client_hung_up_waits_for_the_next_stream(ewsim: SimHandle,
                                                                      account) -> None:  # type: ignore[no-untyped-def]
    ewsim.control.settings(notification_minute_seconds=MINUTE)
    sub_id = account.inbox.subscribe_to_streaming(event_types=["CreatedEvent"])
    sock, _ = open_stream(ewsim, sub_id)
    sock.close()
    # At once: the stream that served the closed connection still holds the subscription.
    created = ewsim.control.create_item(ewsim.user, "inbox", Subject="While away")
    started = time.monotonic()
    events = _next_events(account, sub_id)
    assert [(type(e), e.item_id.id) for e in events] == [(CreatedEvent, created["id"])]
    assert time.monotonic() - started < 2   # delivered at once, not after a timeout


def test_over_tls_too_an_event_after_the_client_hung_up_waits(ewsim: SimHandle,
                                                               account) -> None:  # type: ignore[no-untyped-def]
    ewsim.control.settings(notification_minute_seconds=MINUTE)
    sub_id = account.inbox.subscribe_to_streaming(event_types=["CreatedEvent"])
    sock, _ = open_stream(ewsim, sub_id, tls=True)
    sock.close()
    created = ewsim.control.create_item(ewsim.user, "inbox", Subject="While away")
    events = _next_events(account, sub_id)
    assert [e.item_id.id for e in events] == [created["id"]]


def test_an_idle_stream_notices_its_client_hung_up(ewsim: SimHandle, account) -> None:  # type: ignore[no-untyped-def]
    # No event, no heartbeat due: the stream still lets the subscription go (its 30-minute
    # expiry starts when the last connection closes).
    ewsim.control.settings(notification_minute_seconds=60)
    sub_id = account.inbox.subscribe_to_streaming()
    sock, _ = open_stream(ewsim, sub_id)
    sock.close()
    assert wait_detached(ewsim, sub_id) < 2


def test_events_a_failed_write_did_not_deliver_come_on_the_next_stream(ewsim: SimHandle,
                                                                         account) -> None:  # type: ignore[no-untyped-def]
    ewsim.control.settings(notification_minute_seconds=MINUTE)
    sub_id = account.inbox.subscribe_to_streaming(event_types=["CreatedEvent"])
    # The connection breaks halfway through writing the next events.
    ewsim.control.fault("stream_reset", operation="GetStreamingEvents")
    sock, _ = open_stream(ewsim, sub_id)
    created = ewsim.control.create_item(ewsim.user, "inbox", Subject="Lost on the wire")
    rest = read_until_closed(sock)
    sock.close()
    # Half a notification came, then the reset: the client could not read the event.
    assert b"<s:Envelope" in rest and b"</s:Envelope>" not in rest
    events = _next_events(account, sub_id)
    assert [(type(e), e.item_id.id) for e in events] == [(CreatedEvent, created["id"])]


def test_events_written_are_not_sent_again(ewsim: SimHandle, account) -> None:  # type: ignore[no-untyped-def]
    ewsim.control.settings(notification_minute_seconds=MINUTE)
    sub_id = account.inbox.subscribe_to_streaming(event_types=["CreatedEvent"])
    first = ewsim.control.create_item(ewsim.user, "inbox", Subject="First")
    assert [e.item_id.id for e in _next_events(account, sub_id)] == [first["id"]]
    second = ewsim.control.create_item(ewsim.user, "inbox", Subject="Second")
    assert [e.item_id.id for e in _next_events(account, sub_id)] == [second["id"]]
