"""The addresses Graph posts to (/hooks/graph/ and /hooks/graph/lifecycle/), through Django's
test client: the validation handshake, clientState checks, the journal, tenant walls."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from engine.graph_watch import Journal
from engine.listen import Listener
from profiles.models import GraphNotification, GraphSubscription, SyncProfile
from tests.engine.graph_watch_helpers import graph_profile, subscription_row

pytestmark = pytest.mark.django_db(transaction=True)
NOTIFY, LIFECYCLE = "/hooks/graph/", "/hooks/graph/lifecycle/"


def post(url: str, payload: Any) -> Any:
    return Client().post(url, json.dumps(payload), content_type="application/json")


def change(subscription_id: str, client_state: str) -> dict[str, Any]:
    return {"subscriptionId": subscription_id, "clientState": client_state,
            "changeType": "updated", "resource": "Users/x/Contacts/y",
            "tenantId": "contoso", "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z"}


@pytest.fixture
def two() -> tuple[SyncProfile, SyncProfile]:
    return graph_profile(None, "Acme", "alice@acme.example"), \
        graph_profile(None, "Globex", "gina@globex.example")


@pytest.mark.parametrize("url", [NOTIFY, LIFECYCLE])
def test_the_validation_token_is_echoed_as_plain_text_at_once(url: str) -> None:
    token = "Validation: Testing client application reachability for subscription Request-Id: 1<b>"
    started = time.monotonic()
    response = Client().post(f"{url}?validationToken={token.replace(' ', '%20')}", b"",
                             content_type="text/plain")
    assert time.monotonic() - started < 1.0
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == token   # unescaped, as Graph expects
    assert not GraphNotification.objects.exists()


def test_a_good_notification_is_journaled_for_its_subscriptions_profile_only(
        two: tuple[SyncProfile, SyncProfile]) -> None:
    acme, globex = two
    subscription_row(acme, "sub-acme", "acme-state", agenda="contacts")
    subscription_row(globex, "sub-globex", "globex-state", agenda="calendar")
    # Two changes of one folder in one delivery: one row.
    response = post(NOTIFY, {"value": [change("sub-acme", "acme-state"),
                                       change("sub-acme", "acme-state")]})
    assert response.status_code == 202
    assert list(GraphNotification.objects.values_list("profile_id", "agenda", "kind")) == [
        (acme.pk, "contacts", "change")]


def test_a_wrong_or_missing_client_state_is_ignored_and_counted(
        two: tuple[SyncProfile, SyncProfile]) -> None:
    acme, globex = two
    subscription_row(acme, "sub-acme", "acme-state")
    subscription_row(globex, "sub-globex", "globex-state")
    # Globex's clientState with Acme's subscription (and the reverse) reaches nobody.
    response = post(NOTIFY, {"value": [change("sub-acme", "globex-state"),
                                       change("sub-globex", "acme-state"),
                                       change("sub-acme", ""),
                                       change("sub-unknown", "acme-state")]})
    assert response.status_code == 202
    assert not GraphNotification.objects.exists()
    counts = dict(GraphSubscription.objects.values_list("subscription_id", "refused"))
    assert counts == {"sub-acme": 2, "sub-globex": 1}
    assert GraphSubscription.objects.get(subscription_id="sub-acme").last_refused is not None


def test_bad_bodies_get_a_clear_answer_and_leave_nothing(
        two: tuple[SyncProfile, SyncProfile]) -> None:
    subscription_row(two[0], "sub-acme", "acme-state")
    assert Client().post(NOTIFY, b"{nope", content_type="application/json").status_code == 400
    assert post(NOTIFY, {"values": []}).status_code == 400
    assert post(NOTIFY, {"value": ["x", 3, None]}).status_code == 202
    assert Client().get(NOTIFY).status_code == 405
    assert not GraphNotification.objects.exists()


def test_lifecycle_events_mark_the_subscription_or_journal_a_missed_sync(
        two: tuple[SyncProfile, SyncProfile]) -> None:
    acme, globex = two
    subscription_row(acme, "sub-a", "s-a", agenda="contacts", folder_id="f-a")
    subscription_row(acme, "sub-b", "s-b", agenda="calendar", folder_id="f-b")
    subscription_row(globex, "sub-g", "s-g", agenda="contacts", folder_id="f-g")

    def event(subscription_id: str, state: str, name: str) -> dict[str, Any]:
        return {"subscriptionId": subscription_id, "clientState": state,
                "lifecycleEvent": name, "tenantId": "contoso"}

    response = post(LIFECYCLE, {"value": [event("sub-a", "s-a", "reauthorizationRequired"),
                                          event("sub-b", "s-b", "subscriptionRemoved"),
                                          event("sub-g", "s-a", "missed"),   # wrong state
                                          event("sub-b", "s-b", "missed")]})
    assert response.status_code == 202
    rows = {s.subscription_id: s for s in GraphSubscription.objects.all()}
    assert rows["sub-a"].renew_now and not rows["sub-a"].removed
    assert rows["sub-b"].removed and not rows["sub-b"].renew_now
    assert not rows["sub-g"].renew_now and rows["sub-g"].refused == 1
    assert list(GraphNotification.objects.values_list("profile_id", "agenda", "kind")) == [
        (acme.pk, "calendar", "missed")]


def test_the_listener_queues_the_journaled_agendas_debounced(
        two: tuple[SyncProfile, SyncProfile]) -> None:
    acme = two[0]
    subscription_row(acme, "sub-acme", "acme-state")
    queued: list[tuple[int, str]] = []
    listener = Listener(lambda profile, agenda: queued.append((profile.pk, agenda)),
                        debounce=0.3)
    listener.graph.journal = Journal()
    listener.graph.tick()   # from now on (and the LAG before)
    for _ in range(100):   # a burst: one sync
        post(NOTIFY, {"value": [change("sub-acme", "acme-state")]})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        listener.graph.tick()
        listener._flush()
        time.sleep(0.05)
    assert queued == [(acme.pk, "contacts")]
    # Read once: later ticks queue nothing more.
    listener.graph.tick()
    assert not listener._due


def test_the_connection_page_says_whether_notifications_are_on_and_why_not(
        two: tuple[SyncProfile, SyncProfile]) -> None:
    from django.contrib.auth.models import User
    from django.test import override_settings

    acme = two[0]
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    page = f"/admin/profiles/mailboxconnection/{acme.connection_id}/change/"
    with override_settings(PUBLIC_BASE_URL=""):
        assert "PUBLIC_BASE_URL" in client.get(page).content.decode()
    row = subscription_row(acme, "", "s")
    row.last_error = "Subscription validation request failed."
    row.save()
    with override_settings(PUBLIC_BASE_URL="https://sync.example.com"):
        text = client.get(page).content.decode()
    assert "0 of 1 synced folders" in text and "validation request failed" in text
