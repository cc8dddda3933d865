"""Subscribe / GetEvents / GetStreamingEvents / Unsubscribe through unmodified exchangelib."""

from __future__ import annotations

import queue
import threading
import time

import pytest
import requests
from exchangelib import IMPERSONATION, Contact, Message
from exchangelib.errors import (
    ErrorInvalidSubscription,
    ErrorInvalidWatermark,
    ErrorMissedNotificationEvents,
    ErrorNewEventStreamConnectionOpened,
    ErrorSchemaValidation,
    ErrorSubscriptionAccessDenied,
    ErrorSubscriptionNotFound,
)
from exchangelib.properties import (
    CreatedEvent,
    DeletedEvent,
    ModifiedEvent,
    MovedEvent,
    NewMailEvent,
    StatusEvent,
)
from exchangelib.services import GetEvents, GetStreamingEvents
from lxml import etree

from ewsim import notifications, schema
from ewsim.ns import M, S, T
from ewsim.operations.notifications import schema_view
from ewsim.server import EwsServer
from ewsim.testing import SimHandle

from .conftest import make_account


def _events(account, sub_id, watermark):
    """All events after `watermark` and the watermark to continue from."""
    out = []
    for notification in account.inbox.get_events(sub_id, watermark):
        out.extend(notification.events)
    return out, out[-1].watermark


def _kinds(events):
    return [type(e).__name__ for e in events]


def _save(account, folder, subject):
    msg = Message(account=account, folder=folder, subject=subject)
    msg.save()
    return msg


def _wait_attached(sim: SimHandle, sub_id: str, timeout: float = 5.0) -> None:
    """Until a GetStreamingEvents connection holds the subscription."""
    hub = sim.server.store.notifications
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sim.server.store.lock:
            sub = hub.subscriptions.get(sub_id)
            if sub is not None and sub.stream_token and sub.expires_at is None:
                return
        time.sleep(0.01)
    raise AssertionError("stream never attached")


def _stream_in_thread(account, sub_ids, connection_timeout=1):
    """Run GetStreamingEvents in a thread; returns (thread, received queue, service, errors)."""
    svc = GetStreamingEvents(account=account)
    received: queue.Queue = queue.Queue()
    errors: list[BaseException] = []

    def run():
        try:
            for notification in svc.call(subscription_ids=sub_ids,
                                         connection_timeout=connection_timeout):
                received.put(notification)
        except Exception as exc:   # surfaced by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, received, svc, errors


# --- pull subscriptions ---------------------------------------------------------------------
def test_pull_subscription_reports_create_modify_move_delete(ewsim, account):
    inbox, junk = account.inbox, account.junk
    sub_id, wm0 = inbox.subscribe_to_pull()
    msg = _save(account, inbox, "First")
    created_key = msg.changekey
    msg.subject = "Edited"
    msg.save(update_fields=["subject"])
    modified_key = msg.changekey
    old_id = msg.id
    msg.move(junk)
    gone = _save(account, inbox, "Gone")
    gone_id = gone.id
    gone.delete()

    events, wm1 = _events(account, sub_id, wm0)
    assert _kinds(events) == ["CreatedEvent", "ModifiedEvent", "MovedEvent", "CreatedEvent",
                              "DeletedEvent"]
    created, modified, moved, _created2, deleted = events
    assert (created.item_id.id, created.item_id.changekey) == (old_id, created_key)
    assert created.parent_folder_id.id == inbox.id
    assert (modified.item_id.id, modified.item_id.changekey) == (old_id, modified_key)
    # EWS ids change on move: the new id, and the old one with its old parent.
    assert moved.item_id.id == msg.id != old_id
    assert moved.old_item_id.id == old_id
    assert moved.parent_folder_id.id == junk.id
    assert moved.old_parent_folder_id.id == inbox.id
    assert deleted.item_id.id == gone_id
    assert all(e.timestamp is not None for e in events)
    watermarks = [e.watermark for e in events]
    assert len(set(watermarks)) == len(watermarks) and wm0 not in watermarks

    # The watermark advanced: nothing new after it, only a status event.
    later = list(inbox.get_events(sub_id, wm1))
    assert [_kinds(n.events) for n in later] == [["StatusEvent"]]
    assert later[0].previous_watermark == wm1
    inbox.unsubscribe(sub_id)
    counters = ewsim.control.counters()
    assert counters["Subscribe"] == 1 and counters["GetEvents"] == 2
    assert counters["Unsubscribe"] == 1


def test_get_events_without_events_answers_a_status_event(account):
    sub_id, watermark = account.inbox.subscribe_to_pull()
    [notification] = list(account.inbox.get_events(sub_id, watermark))
    assert notification.subscription_id == sub_id
    assert notification.more_events is False
    [status] = notification.events
    assert isinstance(status, StatusEvent) and status.watermark
    # The status watermark is a valid point to continue from.
    _save(account, account.inbox, "After")
    events, _ = _events(account, sub_id, status.watermark)
    assert _kinds(events) == ["CreatedEvent"]


def test_event_types_filter_what_a_subscription_sees(account):
    sub_id, watermark = account.inbox.subscribe_to_pull(event_types=["DeletedEvent"])
    msg = _save(account, account.inbox, "Short-lived")
    msg.subject = "changed"
    msg.save(update_fields=["subject"])
    item_id = msg.id
    msg.delete()
    events, _ = _events(account, sub_id, watermark)
    assert _kinds(events) == ["DeletedEvent"]
    assert events[0].item_id.id == item_id


def test_folder_scope_and_subscribe_to_all_folders(ewsim, account):
    inbox_sub, inbox_wm = account.inbox.subscribe_to_pull()
    with account.pull_subscription() as (all_sub, all_wm):   # SubscribeToAllFolders
        _save(account, account.inbox, "Mail")
        contact = Contact(account=account, folder=account.contacts, display_name="Ann")
        contact.save()
        ewsim.control.create_item(ewsim.user, "calendar", tag="CalendarItem", Subject="Meet")
        everything, _ = _events(account, all_sub, all_wm)
        parents = {e.parent_folder_id.id for e in everything}
        assert parents == {account.inbox.id, account.contacts.id, account.calendar.id}
        assert _kinds(everything) == ["CreatedEvent"] * 3
    only_inbox, _ = _events(account, inbox_sub, inbox_wm)
    assert [e.parent_folder_id.id for e in only_inbox] == [account.inbox.id]
    # The context manager unsubscribed on exit.
    with pytest.raises(ErrorInvalidSubscription):
        list(account.inbox.get_events(all_sub, all_wm))


def test_new_mail_delivery_raises_created_and_new_mail_events(ewsim, account):
    sub_id, watermark = account.inbox.subscribe_to_pull()
    delivered = ewsim.control.deliver(ewsim.user, subject="Hello", body="hi")
    events, _ = _events(account, sub_id, watermark)
    assert sorted(_kinds(events)) == ["CreatedEvent", "NewMailEvent"]
    assert {e.item_id.id for e in events} == {delivered["id"]}
    assert all(e.parent_folder_id.id == account.inbox.id for e in events)
    # A client saving a message is not new mail.
    _save(account, account.inbox, "Draft-ish")
    events, _ = _events(account, sub_id, events[-1].watermark)
    assert _kinds(events) == ["CreatedEvent"]


def test_more_events_pages_and_next_watermark(account):
    sub_id, watermark = account.inbox.subscribe_to_pull()
    page = 50   # ewsim.operations.notifications.EVENTS_PER_PAGE
    account.bulk_create(folder=account.inbox,
                        items=[Message(account=account, subject=f"M{i}") for i in range(page + 7)])
    svc = GetEvents(account=account)
    first = svc.get(subscription_id=sub_id, watermark=watermark)
    assert first.more_events is True and len(first.events) == page
    second = svc.get(subscription_id=sub_id, watermark=first.events[-1].watermark)
    assert second.more_events is False and len(second.events) == 7
    assert second.previous_watermark == first.events[-1].watermark


def test_subscribe_with_a_watermark_resumes_after_it(account):
    sub_id, watermark = account.inbox.subscribe_to_pull()
    _save(account, account.inbox, "Seen")
    _events_seen, resume = _events(account, sub_id, watermark)
    account.inbox.unsubscribe(sub_id)
    missed = [_save(account, account.inbox, f"While away {i}").id for i in range(2)]
    new_sub, new_wm = account.inbox.subscribe_to_pull(watermark=resume)
    events, _ = _events(account, new_sub, new_wm)
    assert [e.item_id.id for e in events] == missed


def test_unsubscribe_then_get_events_is_invalid_subscription(account):
    sub_id, watermark = account.inbox.subscribe_to_pull()
    assert account.inbox.unsubscribe(sub_id) is True
    with pytest.raises(ErrorInvalidSubscription):
        list(account.inbox.get_events(sub_id, watermark))
    with pytest.raises(ErrorSubscriptionNotFound):
        account.inbox.unsubscribe(sub_id)


def test_unknown_subscription_ids(account):
    with pytest.raises(ErrorInvalidSubscription):
        list(account.inbox.get_events("BADSUB", "AAAA"))
    with pytest.raises(ErrorInvalidSubscription, match=r"subscription IDs: \['BADSUB'\]"):
        list(account.inbox.get_streaming_events("BADSUB", connection_timeout=1))


def test_pull_subscription_expires_after_its_timeout(ewsim, account):
    ewsim.control.settings(notification_minute_seconds=0.3)
    sub_id, watermark = account.inbox.subscribe_to_pull(timeout=1)
    list(account.inbox.get_events(sub_id, watermark))    # GetEvents restarts the timeout
    time.sleep(0.5)
    with pytest.raises(ErrorInvalidSubscription):
        list(account.inbox.get_events(sub_id, watermark))


def test_watermarks_belong_to_their_subscription(account):
    sub_a, wm_a = account.inbox.subscribe_to_pull()
    _sub_b, wm_b = account.inbox.subscribe_to_pull()
    with pytest.raises(ErrorInvalidWatermark):
        list(account.inbox.get_events(sub_a, wm_b))
    with pytest.raises(ErrorInvalidWatermark):
        list(account.inbox.get_events(sub_a, "not-a-watermark"))
    assert _kinds(next(account.inbox.get_events(sub_a, wm_a)).events) == ["StatusEvent"]


def test_another_users_subscription_is_access_denied(ewsim, account):
    ewsim.control.add_user("bob@example.com", "bob-secret")
    sub_id, watermark = account.inbox.subscribe_to_pull()
    bob = make_account(ewsim, "bob@example.com", "bob-secret")
    with pytest.raises(ErrorSubscriptionAccessDenied):
        list(bob.inbox.get_events(sub_id, watermark))
    with pytest.raises(ErrorSubscriptionAccessDenied):
        bob.inbox.unsubscribe(sub_id)
    assert account.inbox.unsubscribe(sub_id) is True


def test_event_log_stays_bounded(ewsim, account, monkeypatch):
    monkeypatch.setattr(notifications, "RETAIN", 5)
    monkeypatch.setattr(notifications, "MAX_EVENTS", 20)
    store = ewsim.server.store
    active, active_wm = account.inbox.subscribe_to_pull()
    idle, idle_wm = account.inbox.subscribe_to_pull()
    for round_ in range(3):
        account.bulk_create(folder=account.inbox,
                            items=[Message(account=account, subject=f"R{round_}-{i}")
                                   for i in range(10)])
        # `active` keeps acknowledging; `idle` never asks.
        svc = GetEvents(account=account)
        while True:
            notification = svc.get(subscription_id=active, watermark=active_wm)
            active_wm = notification.events[-1].watermark
            if not notification.more_events:
                break
    log = store.notifications.logs[ewsim.user]
    assert len(log.events) <= 20
    # The idle subscription fell behind the hard cap: Exchange says events were missed.
    with pytest.raises(ErrorMissedNotificationEvents):
        list(account.inbox.get_events(idle, idle_wm))
    account.inbox.unsubscribe(idle)
    list(account.inbox.get_events(active, active_wm))
    assert len(log.events) <= 5   # only the tail kept for resuming


# --- streaming subscriptions ----------------------------------------------------------------
def test_streaming_delivers_events_while_the_same_account_keeps_working(ewsim):
    # exchangelib needs a second connection to call EWS while a stream holds one (#1088).
    account = make_account(ewsim, max_connections=2)
    ewsim.control.settings(notification_minute_seconds=20)   # stream stays open for this test
    sub_id = account.inbox.subscribe_to_streaming()
    thread, received, svc, errors = _stream_in_thread(account, [sub_id])
    _wait_attached(ewsim, sub_id)

    created: list[str] = []
    worker = threading.Thread(
        target=lambda: created.extend(_save(account, account.inbox, f"T{i}").id
                                      for i in range(2)))
    worker.start()
    worker.join(10)
    seen: list = []
    while len(seen) < 2:
        seen.extend(received.get(timeout=5).events)   # pushed as they happen, not at close
    assert [e.item_id.id for e in seen] == created
    assert all(isinstance(e, CreatedEvent) for e in seen)

    # Mail delivered by the control plane arrives on the open stream too.
    delivered = ewsim.control.deliver(ewsim.user, subject="Pushed")
    pushed: list = []
    while len(pushed) < 2:
        pushed.extend(received.get(timeout=5).events)
    assert {type(e) for e in pushed} == {CreatedEvent, NewMailEvent}
    assert {e.item_id.id for e in pushed} == {delivered["id"]}

    # Unsubscribing (over the second connection) ends the stream with Closed at once.
    account.inbox.unsubscribe(sub_id)
    thread.join(5)
    assert not thread.is_alive() and not errors
    assert svc.connection_status == "Closed"
    assert ewsim.control.counters()["GetStreamingEvents"] == 1


def test_streaming_closes_after_connection_timeout(ewsim, account):
    ewsim.control.settings(notification_minute_seconds=0.4)
    with account.streaming_subscription() as sub_id:   # SubscribeToAllFolders
        svc = GetStreamingEvents(account=account)
        started = time.monotonic()
        assert list(svc.call(subscription_ids=[sub_id], connection_timeout=1)) == []
        elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 3
    assert svc.connection_status == "Closed"


def test_streaming_wire_format_is_chunked_envelopes_with_heartbeats(ewsim, account):
    ewsim.control.settings(notification_minute_seconds=1.0)   # heartbeat every 0.5 s
    sub_id = account.inbox.subscribe_to_streaming(event_types=["CreatedEvent"])
    body = (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}" xmlns:m="{M}" '
            f'xmlns:t="{T}"><s:Header><t:RequestServerVersion Version="Exchange2016"/>'
            f'</s:Header><s:Body><m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>'
            f'{sub_id}</t:SubscriptionId></m:SubscriptionIds><m:ConnectionTimeout>1'
            f'</m:ConnectionTimeout></m:GetStreamingEvents></s:Body></s:Envelope>')
    timer = threading.Timer(0.2, lambda: ewsim.control.create_item(ewsim.user, "inbox",
                                                                   Subject="Wire"))
    timer.start()
    resp = requests.post(ewsim.url, data=body.encode(), auth=(ewsim.user, ewsim.password),
                         headers={"Content-Type": "text/xml; charset=utf-8"}, stream=True,
                         timeout=30)
    chunks = [c for c in resp.raw.read_chunked(decode_content=False)]
    timer.join()
    assert resp.status_code == 200
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert "close" not in resp.headers.get("Connection", "").lower()
    statuses, notified = [], []
    for chunk in chunks:   # one complete SOAP document per chunk
        env = etree.fromstring(chunk)
        payload = env.find(f"{{{S}}}Body")[0]
        assert schema.validate_payload(schema_view(payload)) == []
        msg = payload.find(f"{{{M}}}ResponseMessages")[0]
        statuses.append(msg.findtext(f"{{{M}}}ConnectionStatus"))
        notified.extend(msg.iter(f"{{{M}}}Notification"))
    assert statuses[0] == "OK" and statuses[-1] == "Closed"
    assert statuses.count("OK") >= 2          # the opening status plus heartbeat(s)
    assert len(notified) == 1 and notified[0].find(f"{{{T}}}CreatedEvent") is not None


def test_a_new_stream_takes_the_subscription_over(ewsim):
    account = make_account(ewsim, max_connections=3)
    ewsim.control.settings(notification_minute_seconds=20)
    sub_id = account.inbox.subscribe_to_streaming()
    first, _, _, first_errors = _stream_in_thread(account, [sub_id])
    _wait_attached(ewsim, sub_id)
    second, received, second_svc, second_errors = _stream_in_thread(account, [sub_id])
    first.join(5)
    assert not first.is_alive()
    assert len(first_errors) == 1 and isinstance(first_errors[0],
                                                 ErrorNewEventStreamConnectionOpened)
    _save(account, account.inbox, "To the new stream")
    assert _kinds(received.get(timeout=5).events) == ["CreatedEvent"]
    account.inbox.unsubscribe(sub_id)
    second.join(5)
    assert not second.is_alive() and not second_errors
    assert second_svc.connection_status == "Closed"


def test_connection_timeout_outside_1_to_30_is_rejected(account):
    sub_id = account.inbox.subscribe_to_streaming()
    with pytest.raises(ErrorSchemaValidation):
        list(account.inbox.get_streaming_events(sub_id, connection_timeout=31))


def test_reset_ends_open_streams_promptly(ewsim):
    account = make_account(ewsim, max_connections=2)
    sub_id = account.inbox.subscribe_to_streaming()   # default minute: would run 60 s
    thread, _, svc, errors = _stream_in_thread(account, [sub_id])
    _wait_attached(ewsim, sub_id)
    started = time.monotonic()
    ewsim.reset()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert not errors and svc.connection_status == "Closed"


def test_server_stop_ends_open_streams_promptly():
    server = EwsServer(port=0, validate=True).start()
    sim = SimHandle(server)
    sim.reset()
    try:
        account = make_account(sim, max_connections=2)
        sub_id = account.inbox.subscribe_to_streaming()
        thread, _, svc, errors = _stream_in_thread(account, [sub_id])
        _wait_attached(sim, sub_id)
        started = time.monotonic()
    finally:
        server.stop()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert not errors and svc.connection_status == "Closed"
    assert sim.problems() == []


def test_modified_and_moved_events_on_a_stream(ewsim, account):
    ewsim.control.settings(notification_minute_seconds=0.5)
    sub_id = account.inbox.subscribe_to_streaming(event_types=["ModifiedEvent", "MovedEvent"])
    msg = ewsim.control.create_item(ewsim.user, "inbox", Subject="Streamed")
    ewsim.control.update_item(msg["id"], Subject="Changed")
    ewsim.control.move_item(msg["id"], "junkemail")
    # Events queued before the connection are delivered when it opens.
    events = [e for n in account.inbox.get_streaming_events(sub_id, connection_timeout=1)
              for e in n.events]
    assert [type(e) for e in events] == [ModifiedEvent, MovedEvent]
    assert events[1].old_item_id.id == msg["id"] == events[0].item_id.id
    assert events[1].parent_folder_id.id == account.junk.id
    assert not any(isinstance(e, DeletedEvent) for e in events)
    account.inbox.unsubscribe(sub_id)


def test_one_stream_carries_the_subscriptions_of_several_impersonated_mailboxes(ewsim):
    # A service account subscribes each mailbox as that mailbox, then reads them all through
    # one GetStreamingEvents sent as any one of them (Microsoft's grouped subscriptions).
    ewsim.control.add_user("svc@example.com", "svc-secret", can_impersonate=["*"])
    ewsim.control.add_user("bob@example.com", "bob-secret")
    alice, bob = (make_account(ewsim, username="svc@example.com", password="svc-secret",
                               primary=address, access_type=IMPERSONATION, max_connections=2)
                  for address in (ewsim.user, "bob@example.com"))
    ewsim.control.settings(notification_minute_seconds=20)
    ids = {"alice": alice.inbox.subscribe_to_streaming(),
           "bob": bob.inbox.subscribe_to_streaming()}
    thread, received, svc, errors = _stream_in_thread(alice, list(ids.values()))
    for sub_id in ids.values():
        _wait_attached(ewsim, sub_id)
    created = {"alice": ewsim.control.create_item(ewsim.user, "inbox", Subject="A")["id"],
               "bob": ewsim.control.create_item("bob@example.com", "inbox", Subject="B")["id"]}
    seen: dict[str, str] = {}
    while len(seen) < 2:
        notification = received.get(timeout=5)
        for event in notification.events:
            seen[notification.subscription_id] = event.item_id.id
    assert seen == {ids["alice"]: created["alice"], ids["bob"]: created["bob"]}
    bob.inbox.unsubscribe(ids["bob"])   # the stream goes on for the other
    alice.inbox.unsubscribe(ids["alice"])
    thread.join(5)
    assert not thread.is_alive() and not errors and svc.connection_status == "Closed"
    assert ewsim.control.counters()["GetStreamingEvents"] == 1


def test_a_stream_naming_a_forgotten_subscription_names_that_one_alone(ewsim, account):
    good = account.inbox.subscribe_to_streaming()
    with pytest.raises(ErrorInvalidSubscription, match=r"subscription IDs: \['BADSUB'\]"):
        list(GetStreamingEvents(account=account).call(subscription_ids=[good, "BADSUB"],
                                                      connection_timeout=1))
    account.inbox.unsubscribe(good)
