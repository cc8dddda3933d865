"""Graph change notifications end to end: the listener subscribes a Graph profile's folders at
ewsim's Graph front door, which checks the live test server's address with the validation
handshake and posts every change (and lifecycle events) to it; the hooks journal them and the
listener queues the syncs. Nothing here stands in for Graph or for the server."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from crm.models import Person
from engine.graph_watch import Subscriptions
from engine.jobs import run_job
from engine.listen import Listener
from ewsim.testing import SimHandle
from profiles.models import GraphSubscription, SyncProfile
from tests.engine.graph_watch_helpers import graph_profile
from tests.engine.listen_helpers import until
from tests.engine.mailbox.graph_access import add_app

pytestmark = pytest.mark.django_db(transaction=True)
Queued = list[tuple[int, str]]
# The listeners' debounce here: a burst of changes within it makes one sync.
DEBOUNCE = 0.2


@pytest.fixture
def public(live_server: Any) -> Iterator[Any]:
    with override_settings(PUBLIC_BASE_URL=live_server.url):
        yield live_server


@pytest.fixture
def profile(ewsim: SimHandle, public: Any) -> SyncProfile:
    add_app(ewsim)
    ewsim.control.graph_notification_settings(retry_delays=[0.1, 0.1], batch_window_s=0.05)
    return graph_profile(ewsim, "Acme", ewsim.user)


@pytest.fixture
def listen() -> Iterator[Callable[[], tuple[Listener, Queued]]]:
    listeners: list[Listener] = []

    def start() -> tuple[Listener, Queued]:
        queued: Queued = []
        listener = Listener(lambda p, agenda: queued.append((p.pk, agenda)), debounce=DEBOUNCE,
                            crm_poll=0.1)
        listeners.append(listener)
        threading.Thread(target=listener.run, daemon=True).start()
        return listener, queued

    yield start
    for listener in listeners:
        listener.stop.set()
    time.sleep(1.2)   # the subscription thread's last round ends before the database goes


def sim_subscriptions(sim: SimHandle) -> dict[str, dict[str, Any]]:
    """Graph's subscriptions by resource, as ewsim holds them."""
    return {s["resource"]: s for s in sim.control.graph_subscriptions()}


def new_contact(sim: SimHandle, surname: str = "New") -> None:
    sim.control.create_item(sim.user, folder="contacts", tag="Contact", xml=(
        f"<t:Contact><t:DisplayName>Ann {surname}</t:DisplayName><t:GivenName>Ann"
        f"</t:GivenName><t:Surname>{surname}</t:Surname></t:Contact>"))


def subscribed(sim: SimHandle, profile: SyncProfile, count: int = 2) -> None:
    until(lambda: GraphSubscription.objects.filter(profile=profile).exclude(
        subscription_id="").count() == count and len(sim_subscriptions(sim)) == count,
        "the profile's folders subscribed", limit=15)


def test_a_change_in_outlook_queues_the_sync_within_a_second(
        ewsim: SimHandle, profile: SyncProfile, listen: Any) -> None:
    _listener, queued = listen()
    subscribed(ewsim, profile)
    resources = set(sim_subscriptions(ewsim))
    assert resources == {f"users/{ewsim.user}/contactFolders/contacts/contacts",
                         f"users/{ewsim.user}/calendar/events"}
    # Made anew: each agenda synced once (edits before the subscription were never notified).
    until(lambda: sorted(queued) == [(profile.pk, "calendar"), (profile.pk, "contacts")],
          "the first syncs")
    queued.clear()
    started = time.monotonic()
    new_contact(ewsim)
    until(lambda: (profile.pk, "contacts") in queued, "the contacts sync queued", limit=5)
    assert time.monotonic() - started < 1.0
    time.sleep(0.5)
    assert queued == [(profile.pk, "contacts")]


def test_a_burst_of_100_changes_queues_one_or_two_syncs(
        ewsim: SimHandle, profile: SyncProfile, listen: Any) -> None:
    _listener, queued = listen()
    subscribed(ewsim, profile)
    until(lambda: len(queued) == 2, "the first syncs")
    queued.clear()
    started = time.monotonic()
    for i in range(100):
        new_contact(ewsim, f"Burst {i}")
    burst = time.monotonic() - started
    until(lambda: bool(queued), "a sync queued")
    time.sleep(2.0)   # every delivery in, every debounce over
    # One sync per debounce window the burst spans: one or two when the 100 edits come within
    # a window (as they do on a quiet machine), never one per edit on a slow one.
    most = 2 + int(burst / DEBOUNCE)
    assert 1 <= queued.count((profile.pk, "contacts")) <= most, (burst, queued)
    assert set(queued) == {(profile.pk, "contacts")}
    assert ewsim.control.graph_notifications()["counters"].get("sent", 0) >= 1


def test_a_removed_subscription_is_made_again(
        ewsim: SimHandle, profile: SyncProfile, listen: Any) -> None:
    _listener, queued = listen()
    subscribed(ewsim, profile)
    contacts = GraphSubscription.objects.get(profile=profile, agenda="contacts")
    old_id = contacts.subscription_id
    until(lambda: len(queued) == 2, "the first syncs")
    queued.clear()
    ewsim.control.graph_lifecycle(old_id, "subscriptionRemoved")
    until(lambda: GraphSubscription.objects.get(pk=contacts.pk).subscription_id not in
          ("", old_id), "made again")
    new_id = GraphSubscription.objects.get(pk=contacts.pk).subscription_id
    assert new_id in {s["id"] for s in sim_subscriptions(ewsim).values()}
    assert old_id not in {s["id"] for s in sim_subscriptions(ewsim).values()}
    until(lambda: (profile.pk, "contacts") in queued, "the catch-up sync")
    queued.clear()
    new_contact(ewsim)   # and it notifies
    until(lambda: (profile.pk, "contacts") in queued, "a change queued through the new one")


def test_renewal_before_expiry_and_an_expired_one_made_again(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    queued: Queued = []
    manager = Subscriptions(lambda p, agenda: queued.append((p, agenda)))
    manager.check()
    rows = {s.agenda: s for s in GraphSubscription.objects.filter(profile=profile)}
    contacts = rows["contacts"]
    assert contacts.subscription_id and contacts.expires > timezone.now() + dt.timedelta(
        days=2, hours=23)
    # Less than a day left: renewed (same subscription, later expiry, at Graph too).
    GraphSubscription.objects.filter(pk=contacts.pk).update(
        expires=timezone.now() + dt.timedelta(hours=20))
    queued.clear()
    manager.check()
    renewed = GraphSubscription.objects.get(pk=contacts.pk)
    assert renewed.subscription_id == contacts.subscription_id and renewed.renewed is not None
    assert renewed.expires > timezone.now() + dt.timedelta(days=2, hours=23)
    at_graph = {s["id"]: s for s in ewsim.control.graph_subscriptions()}[renewed.subscription_id]
    assert at_graph["expirationDateTime"].startswith(renewed.expires.strftime("%Y-%m-%dT%H:%M"))
    assert queued == []   # a renewal missed nothing
    # Expired at Graph meanwhile (a listener stopped for days): the renewal's 404 makes it anew.
    ewsim.control.expire_graph_subscription(renewed.subscription_id)
    GraphSubscription.objects.filter(pk=contacts.pk).update(
        expires=timezone.now() + dt.timedelta(hours=1))
    manager.check()
    again = GraphSubscription.objects.get(pk=contacts.pk)
    assert again.subscription_id not in ("", renewed.subscription_id)
    assert again.subscription_id in {s["id"] for s in ewsim.control.graph_subscriptions()}
    assert queued == [(profile.pk, "contacts")]


def test_reauthorization_required_renews_at_once(
        ewsim: SimHandle, profile: SyncProfile, listen: Any) -> None:
    listen()
    subscribed(ewsim, profile)
    contacts = GraphSubscription.objects.get(profile=profile, agenda="contacts")
    ewsim.control.graph_lifecycle(contacts.subscription_id, "reauthorizationRequired")
    until(lambda: GraphSubscription.objects.get(pk=contacts.pk).renewed is not None,
          "renewed", limit=5)
    assert GraphSubscription.objects.get(pk=contacts.pk).subscription_id == \
        contacts.subscription_id


def test_a_missed_notification_queues_the_sync_that_catches_up(
        ewsim: SimHandle, profile: SyncProfile, listen: Any) -> None:
    assert run_job(profile.pk, "contacts") == "success"   # the delta link stored
    _listener, queued = listen()
    subscribed(ewsim, profile)
    until(lambda: len(queued) == 2, "the first syncs")
    queued.clear()
    # Every try of the change's delivery fails: Graph drops it and sends `missed`.
    ewsim.control.fail_graph_deliveries(3)
    new_contact(ewsim, "Missed")
    until(lambda: (profile.pk, "contacts") in queued, "the sync after `missed`", limit=10)
    stats = ewsim.control.graph_notifications()["counters"]
    assert stats.get("dropped", 0) >= 1 and stats.get("lifecycle_sent", 0) >= 1, stats
    # That sync reads from the stored delta link: the change nobody was told of arrives.
    assert run_job(profile.pk, "contacts") == "success"
    assert Person.objects.filter(organization_id=profile.organization_id,
                                 last_name="Missed").exists()


def test_a_folder_change_or_deactivation_deletes_at_graph(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    manager = Subscriptions(lambda p, agenda: None)
    manager.check()
    assert len(sim_subscriptions(ewsim)) == 2
    profile.sync_calendar = False
    profile.save()
    manager.check()
    assert set(sim_subscriptions(ewsim)) == {
        f"users/{ewsim.user}/contactFolders/contacts/contacts"}
    assert GraphSubscription.objects.filter(profile=profile).count() == 1
    profile.active = False
    profile.save()
    manager.check()
    assert sim_subscriptions(ewsim) == {} and not GraphSubscription.objects.exists()


def test_without_a_public_address_nothing_is_subscribed(ewsim: SimHandle, profile: Any) -> None:
    manager = Subscriptions(lambda p, agenda: None)
    manager.check()
    assert len(sim_subscriptions(ewsim)) == 2
    with override_settings(PUBLIC_BASE_URL=""):
        manager.check()
    assert sim_subscriptions(ewsim) == {} and not GraphSubscription.objects.exists()


def test_a_refused_validation_is_kept_as_the_last_error(ewsim: SimHandle, profile: Any,
                                                      live_server: Any) -> None:
    # An address that does not answer the handshake: Graph refuses the subscription.
    with override_settings(PUBLIC_BASE_URL=live_server.url + "/nowhere"):
        Subscriptions(lambda p, agenda: None).check()
    rows = list(GraphSubscription.objects.filter(profile=profile))
    assert rows and all(not r.subscription_id for r in rows)
    assert all("validation" in r.last_error.lower() for r in rows), [r.last_error for r in rows]
    assert sim_subscriptions(ewsim) == {}
