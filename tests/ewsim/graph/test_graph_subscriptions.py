"""Graph change notifications: subscriptions with the validation handshake, notifications on
changes made through EWS, Graph and the control plane, batching, retries then `missed`,
lifecycle events on demand, expiry, renewal, and who may subscribe to what.

The notification endpoint is a real HTTP server on loopback (receiver.py).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from exchangelib import Contact

from ..conftest import make_account
from .client import Graph, call, token
from .receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def expiry(minutes: float = 60) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def subscribe(graph: Graph, receiver: Receiver,
              resource: str = "users/alice@example.com/contacts",
              **extra: object):
    body = {"changeType": "created,updated,deleted", "notificationUrl": receiver.url(),
            "lifecycleNotificationUrl": receiver.url("/lifecycle"), "resource": resource,
            "expirationDateTime": expiry(), "clientState": "secret-state", **extra}
    return graph.post("/subscriptions", body)


@pytest.fixture
def graph(ewsim) -> Graph:
    made = Graph.connect(ewsim)
    # Deliveries retry quickly in tests (Graph itself retries for hours).
    ewsim.control.graph_notification_settings(retry_delays=[0.05, 0.05], batch_window_s=0.05)
    return made


def counters_once(ewsim, name: str, value: int) -> dict[str, int]:
    """The notification counters once `name` reached `value` (within 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        counters = ewsim.control.graph_notifications()["counters"]
        if counters.get(name) == value:
            return counters
        assert time.monotonic() < deadline, counters
        time.sleep(0.05)


def contacts_resource(graph: Graph) -> str:
    return f"users/{graph.mailbox}/contactFolders('contacts')/contacts"


def test_handshake_echoes_the_token_and_the_subscription_is_created(graph, receiver):
    answer = subscribe(graph, receiver, contacts_resource(graph))
    assert answer.status == 201, answer.raw
    sub = answer.json
    assert sub["changeType"] == "created,updated,deleted"
    assert sub["clientState"] == "secret-state"
    assert sub["notificationUrl"] == receiver.url()
    assert sub["lifecycleNotificationUrl"] == receiver.url("/lifecycle")
    assert sub["latestSupportedTlsVersion"] == "v1_2"
    assert sub["applicationId"] == "app-1"
    # Both URLs were validated before the subscription existed.
    assert receiver.validations == ["/notify", "/lifecycle"]
    # Graph's token is a sentence (spaces, colons), URL-encoded in the query.
    assert receiver.tokens[0].startswith("Validation: Testing client application")
    assert graph.get(f"/subscriptions/{sub['id']}").json["id"] == sub["id"]
    listed = graph.get("/subscriptions").json["value"]
    assert [s["id"] for s in listed] == [sub["id"]]


@pytest.mark.parametrize("mode", ["wrong", "status500", "html"])
def test_a_wrong_handshake_answer_refuses_the_subscription(graph, receiver, ewsim, mode):
    receiver.validation_mode = mode
    answer = subscribe(graph, receiver)
    assert answer.status == 400
    assert answer.code == "InvalidRequest"
    assert "validation request failed" in answer.json["error"]["message"]
    assert "innerError" in answer.json["error"]
    assert ewsim.control.graph_subscriptions() == []


def test_an_unreachable_endpoint_refuses_the_subscription(graph, receiver):
    url = receiver.url()
    receiver.close()
    answer = graph.post("/subscriptions", {
        "changeType": "created", "notificationUrl": url,
        "resource": "users/alice@example.com/contacts", "expirationDateTime": expiry()})
    assert answer.status == 400 and answer.code == "InvalidRequest"


def test_bad_requests_are_refused_with_graph_errors(graph, receiver):
    too_long = subscribe(graph, receiver, expirationDateTime=expiry(10081))
    assert too_long.status == 400 and "10080 minutes" in too_long.json["error"]["message"]
    past = subscribe(graph, receiver, expirationDateTime=expiry(-1))
    assert past.status == 400
    state = subscribe(graph, receiver, clientState="x" * 129)
    assert state.status == 400 and "128" in state.json["error"]["message"]
    kind = subscribe(graph, receiver, changeType="created,moved")
    assert kind.status == 400
    resource = subscribe(graph, receiver, "users/alice@example.com/drive/root")
    assert resource.status == 400
    tls = subscribe(graph, receiver, latestSupportedTlsVersion="v9")
    assert tls.status == 400
    assert subscribe(graph, receiver, contacts_resource(graph),
                     latestSupportedTlsVersion="v1_3").status == 201
    # /me needs a delegated token; with an app-only token Graph refuses it.
    me = subscribe(graph, receiver, "me/contacts")
    assert me.status == 400
    missing = graph.post("/subscriptions", {"resource": contacts_resource(graph)})
    assert missing.status == 400


def test_create_update_delete_through_ews_are_notified(ewsim, graph, receiver):
    sub = subscribe(graph, receiver, contacts_resource(graph)).json
    account = make_account(ewsim)
    contact = Contact(account=account, folder=account.contacts, given_name="Petr",
                      surname="Svoboda", display_name="Petr Svoboda")
    contact.save()
    created = receiver.wait_for(1)
    assert len(created) == 1
    note = created[0]
    assert note["subscriptionId"] == sub["id"]
    assert note["changeType"] == "created"
    assert note["clientState"] == "secret-state"
    assert note["tenantId"] == "tenant-1"
    assert note["subscriptionExpirationDateTime"] == sub["expirationDateTime"]
    immutable = ewsim.server.store.items[contact.id].immutable_id   # the app asked for these
    assert note["resourceData"]["id"] == immutable
    assert note["resourceData"]["@odata.type"] == "#Microsoft.Graph.Contact"
    assert note["resourceData"]["@odata.id"] == note["resource"]
    assert note["resource"] == f"Users/alice@example.com/Contacts/{immutable}"
    assert note["resourceData"]["@odata.etag"].startswith('W/"')
    contact.job_title = "CEO"
    contact.save()
    contact.delete()
    notes = receiver.wait_for(3)
    assert [n["changeType"] for n in notes] == ["created", "updated", "deleted"]
    assert {n["resourceData"]["id"] for n in notes} == {immutable}
    # A contact in another mailbox's folder is nobody's business here.
    assert receiver.notifications("/lifecycle") == []


def test_changes_through_graph_and_the_control_plane_are_notified(ewsim, graph, receiver):
    subscribe(graph, receiver, f"users/{graph.mailbox}/events")
    made = graph.post("events", {"subject": "Call", "start": {
        "dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"}, "end": {
        "dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"}}).json
    graph.patch(f"events/{made['id']}", {"subject": "Call 2"})
    # DELETE moves it to Deleted Items: it is gone from the calendar.
    assert graph.delete(f"events/{made['id']}").status == 204
    notes = receiver.wait_for(3)
    assert [n["changeType"] for n in notes] == ["created", "updated", "deleted"]
    assert notes[0]["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
    assert {n["resourceData"]["id"] for n in notes} == {made["id"]}
    other = ewsim.control.create_item("alice@example.com", "calendar", tag="CalendarItem",
                                      Subject="From elsewhere")
    ewsim.control.delete_item(other["id"])
    notes = receiver.wait_for(5)
    assert [n["changeType"] for n in notes][3:] == ["created", "deleted"]
    # A contact change does not concern an events subscription.
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="X")
    time.sleep(0.3)
    assert len(receiver.notifications()) == 5


def test_a_folder_subscription_sees_its_folder_only_and_its_change_types(ewsim, graph,
                                                                          receiver):
    subscribe(graph, receiver, f"users/{graph.mailbox}/mailFolders('inbox')/messages",
              changeType="created")
    ewsim.control.deliver("alice@example.com", subject="hello", body="x")
    sent = ewsim.control.deliver("alice@example.com", folder="sentitems", subject="other")
    inbox = ewsim.control.deliver("alice@example.com", subject="second", body="y")
    ewsim.control.update_item(inbox["id"], IsRead=True)     # updated: not subscribed
    notes = receiver.wait_for(2)
    time.sleep(0.3)
    notes = receiver.notifications()
    assert [n["changeType"] for n in notes] == ["created", "created"]
    assert all(n["resourceData"]["@odata.type"] == "#Microsoft.Graph.Message" for n in notes)
    assert sent["id"] not in {n["resourceData"]["id"] for n in notes}


def test_a_burst_arrives_in_few_posts(ewsim, graph, receiver):
    ewsim.control.graph_notification_settings(batch_window_s=0.3)
    subscribe(graph, receiver, contacts_resource(graph))
    for number in range(30):
        ewsim.control.create_item("alice@example.com", "contacts", tag="Contact",
                                  GivenName=f"C{number}")
    notes = receiver.wait_for(30)
    assert len(notes) == 30
    assert len(receiver.posts) < 10        # batched: several notifications per POST
    assert max(len(post["value"]) for post in receiver.posts) > 1


def test_a_failing_endpoint_is_retried_then_dropped_with_a_missed_event(ewsim, graph,
                                                                         receiver):
    sub = subscribe(graph, receiver, contacts_resource(graph)).json
    receiver.fail = 1                      # the first attempt fails, the retry succeeds
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="A")
    assert len(receiver.wait_for(1)) == 1
    receiver.fail = 3                      # the attempt and both retries fail: dropped
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="B")
    lifecycle = receiver.wait_for(1, "/lifecycle")
    assert lifecycle == [{"subscriptionId": sub["id"],
                          "subscriptionExpirationDateTime": sub["expirationDateTime"],
                          "clientState": "secret-state", "tenantId": "tenant-1",
                          "lifecycleEvent": "missed"}]
    assert len(receiver.notifications()) == 1
    counters = counters_once(ewsim, "lifecycle_sent", 1)    # counted once answered
    assert counters["sent"] == 1 and counters["dropped"] == 1
    assert counters["failed_posts"] == 4 and counters["lifecycle_sent"] == 1
    # The subscription lives on: the next change is delivered.
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="C")
    assert len(receiver.wait_for(2)) == 2


def test_injected_delivery_failures_drop_the_notification_and_the_missed_event(
        ewsim, graph, receiver):
    subscribe(graph, receiver, contacts_resource(graph))
    # Three attempts for the notification, three for its `missed` lifecycle event.
    ewsim.control.fail_graph_deliveries(6)
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="A")
    counters_once(ewsim, "lifecycle_dropped", 1)
    stats = ewsim.control.graph_notifications()
    assert stats["counters"]["dropped"] == 1 and stats["counters"]["failed_posts"] == 6
    assert stats["fail_next"] == 0
    assert [d["error"] for d in stats["deliveries"]] == ["injected failure"] * 6
    assert receiver.posts == []
    # A missed event is never reported again; the subscription still delivers.
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="B")
    assert len(receiver.wait_for(1)) == 1


def test_a_refused_connection_counts_as_a_failed_delivery(ewsim, graph, receiver):
    closed = Receiver()
    url = closed.url()
    sub = subscribe(graph, receiver, contacts_resource(graph)).json
    closed.close()                         # nothing listens there any more
    assert graph.patch(f"/subscriptions/{sub['id']}", {"notificationUrl": url}).status == 400
    with ewsim.server.graph_notifier.lock:  # as if the endpoint had gone away since
        ewsim.server.graph_notifier.subscriptions[sub["id"]].notification_url = url
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="A")
    missed = receiver.wait_for(1, "/lifecycle")
    assert missed[0]["lifecycleEvent"] == "missed"
    errors = [d["error"] for d in ewsim.control.graph_notifications()["deliveries"]
              if not d["lifecycle"] and d["url"] == url]
    assert len(errors) == 3 and all("Connection refused" in e for e in errors)


def test_lifecycle_events_on_demand(ewsim, graph, receiver):
    sub = subscribe(graph, receiver, contacts_resource(graph)).json
    ewsim.control.graph_lifecycle(sub["id"], "reauthorizationRequired")
    events = receiver.wait_for(1, "/lifecycle")
    assert events[0]["lifecycleEvent"] == "reauthorizationRequired"
    assert events[0]["subscriptionId"] == sub["id"]
    assert graph.get(f"/subscriptions/{sub['id']}").status == 200
    ewsim.control.graph_lifecycle(sub["id"], "subscriptionRemoved")
    events = receiver.wait_for(2, "/lifecycle")
    assert events[1]["lifecycleEvent"] == "subscriptionRemoved"
    gone = graph.get(f"/subscriptions/{sub['id']}")
    assert gone.status == 404 and gone.code == "ResourceNotFound"
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="A")
    time.sleep(0.3)
    assert receiver.notifications() == []


def test_expiry_stops_notifications_and_removes_the_subscription(ewsim, graph, receiver):
    sub = subscribe(graph, receiver, contacts_resource(graph)).json
    ewsim.control.expire_graph_subscription(sub["id"])
    assert graph.get(f"/subscriptions/{sub['id']}").status == 404
    assert graph.get("/subscriptions").json["value"] == []
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="A")
    time.sleep(0.3)
    assert receiver.notifications() == []


def test_a_subscription_expires_on_its_own(ewsim, graph, receiver):
    sub = subscribe(graph, receiver, contacts_resource(graph),
                    expirationDateTime=expiry(1.5 / 60)).json
    assert graph.get(f"/subscriptions/{sub['id']}").status == 200
    time.sleep(2.0)
    assert ewsim.control.graph_subscriptions() == []
    assert graph.get(f"/subscriptions/{sub['id']}").status == 404


def test_renewal_by_patch_moves_the_expiry(ewsim, graph, receiver):
    sub = subscribe(graph, receiver, contacts_resource(graph),
                    expirationDateTime=expiry(1.5 / 60)).json
    later = expiry(3 * 24 * 60)
    renewed = graph.patch(f"/subscriptions/{sub['id']}", {"expirationDateTime": later})
    assert renewed.status == 200, renewed.raw
    assert renewed.json["expirationDateTime"][:19] == later[:19]
    assert graph.patch(f"/subscriptions/{sub['id']}",
                       {"expirationDateTime": expiry(10081)}).status == 400
    assert graph.patch(f"/subscriptions/{sub['id']}", {"resource": "me/events"}).status == 400
    time.sleep(2.0)                        # past the first expiry: still alive
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="A")
    notes = receiver.wait_for(1)
    assert notes[0]["subscriptionExpirationDateTime"][:19] == later[:19]
    assert graph.delete(f"/subscriptions/{sub['id']}").status == 204
    assert graph.get(f"/subscriptions/{sub['id']}").status == 404


def test_an_app_may_subscribe_only_to_mailboxes_it_may_open(ewsim, graph, receiver):
    ewsim.control.add_user("bob@example.com", "bob-secret")
    ewsim.control.add_app("app-2", "secret-2", tenant="tenant-2",
                          can_impersonate=["bob@example.com"])
    answer = token(ewsim, "app-2", "secret-2", "tenant-2")
    other = Graph(ewsim, answer.json["access_token"], mailbox="bob@example.com")
    refused = subscribe(other, receiver, "users/alice@example.com/contacts")
    assert refused.status == 403 and refused.code == "ErrorAccessDenied"
    assert subscribe(other, receiver, "users/nobody@example.com/contacts").status == 404
    own = subscribe(other, receiver, "users/bob@example.com/contacts")
    assert own.status == 201
    # Each app sees and manages only its own subscriptions.
    assert graph.get("/subscriptions").json["value"] == []
    assert graph.get(f"/subscriptions/{own.json['id']}").status == 404
    assert graph.delete(f"/subscriptions/{own.json['id']}").status == 404
    # Alice's changes never reach bob's subscription; bob's carry tenant-2.
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="A")
    ewsim.control.create_item("bob@example.com", "contacts", tag="Contact", GivenName="B")
    notes = receiver.wait_for(1)
    time.sleep(0.3)
    notes = receiver.notifications()
    assert len(notes) == 1 and notes[0]["tenantId"] == "tenant-2"
    assert notes[0]["resource"].startswith("Users/bob@example.com/")


def test_without_a_token_subscriptions_are_401(ewsim, receiver):
    answer = call("GET", f"{ewsim.graph_url}/subscriptions")
    assert answer.status == 401


def test_a_user_subscribes_to_own_folders_with_me_only(ewsim, receiver):
    ewsim.control.add_app("app-1", "app-secret", tenant="tenant-1")
    ewsim.control.add_user("bob@example.com", "bob-secret")
    form = (b"client_id=app-1&client_secret=app-secret&grant_type=password"
            b"&username=alice@example.com&password=alice-secret")
    answer = call("POST", f"{ewsim.base_url}/tenant-1/oauth2/v2.0/token", raw=form,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    user = Graph(ewsim, answer.json["access_token"], prefer=[])
    own = subscribe(user, receiver, "me/mailFolders('Inbox')/messages")
    assert own.status == 201, own.raw
    assert subscribe(user, receiver, "/me/calendars/calendar/events").status == 201
    foreign = subscribe(user, receiver, "users/bob@example.com/messages")
    assert foreign.status == 403 and foreign.code == "ErrorAccessDenied"
    malformed = subscribe(user, receiver, "me/mailFolders/nosuch/messages")
    assert malformed.status == 400 and malformed.code == "ErrorInvalidIdMalformed"
    unknown = subscribe(user, receiver, "me/mailFolders/AAMkAAAAAAAAAAAAAAAAAA/messages")
    assert unknown.status == 404 and unknown.code == "ErrorItemNotFound"
    contacts = ewsim.server.store.folder_by_distinguished("alice@example.com", "contacts")
    wrong_kind = subscribe(user, receiver, f"me/mailFolders/{contacts.id}/messages")
    assert wrong_kind.status == 404
    delivered = ewsim.control.deliver("alice@example.com", subject="hi", body="x")
    note = receiver.wait_for(1)[0]
    assert note["resourceData"]["id"] == delivered["id"]       # default (store) ids
    assert note["subscriptionId"] == own.json["id"]
    assert len(user.get("/subscriptions").json["value"]) == 2


def test_lifecycle_events_never_share_a_post_with_notifications(ewsim, graph, receiver):
    sub = subscribe(graph, receiver, contacts_resource(graph),
                    lifecycleNotificationUrl=receiver.url()).json
    ewsim.control.graph_notification_settings(batch_window_s=0.3)
    ewsim.control.create_item("alice@example.com", "contacts", tag="Contact", GivenName="A")
    ewsim.control.graph_lifecycle(sub["id"], "reauthorizationRequired")
    assert len(receiver.wait_for(2)) == 2
    kinds = [{"lifecycleEvent" in n for n in post["value"]} for post in receiver.posts]
    # Two POSTs, one of change notifications and one of the lifecycle event, in either order
    # (each URL's queue is sent from its own thread).
    assert sorted(tuple(sorted(k)) for k in kinds) == [(False,), (True,)]
