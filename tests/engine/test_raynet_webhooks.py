"""Raynet webhooks end to end: the connection registers its hook with raynetsim, raynetsim
posts its record changes to the live test server, the receiver journals them, and the
listener queues the syncs (django-q2's ORM broker: the queued tasks are rows to count).

Two organizations, each with its Raynet instance: Acme (raynetsim's `acme`) and Globex
(`globex`), so that one's hook can be seen not to reach the other's profiles."""

from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone
from django_q.models import OrmQ

from crm.models import CrmUser
from engine.crmstore import raynet_webhooks
from engine.crmstore.raynet_client import RaynetClient
from engine.crmstore.raynet_watch import RaynetWatch
from engine.listen import EVENTS_LOOKED_UP, Listener
from engine.models import Agenda, Link
from engine.raynet_models import RaynetKnownRecord
from profiles.models import (
    CrmConnection,
    MailboxConnection,
    Organization,
    RaynetWebhook,
    RaynetWebhookEvent,
    SyncProfile,
)
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.raynet_helpers import public  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

GLOBEX_USER, GLOBEX_KEY = "gina@globex.example", "gina-api-key"


def organization(name: str, sim: RaynetHandle, instance: str, user: str, key: str,
                 mailboxes: list[str]) -> tuple[CrmConnection, list[SyncProfile]]:
    """An organization on a Raynet instance of raynetsim, with an active profile (contacts
    and calendar) per mailbox; its mailbox server is never reached here."""
    org = Organization.objects.create(name=name)
    connection = CrmConnection.objects.get(organization=org)
    connection.kind = "raynet"
    connection.settings = {"base_url": sim.url, "instance": instance, "user": user}
    connection.update_secrets({"api_key": key})
    connection.save()
    mailbox_connection = MailboxConnection(organization=org, name=f"{name} Exchange",
                                           ews_url="https://mail.example.org/EWS/Exchange.asmx",
                                           username="svc")
    mailbox_connection.set_secret("pw")
    mailbox_connection.save()
    profiles = []
    for mailbox in mailboxes:
        user_ = User.objects.create_user(mailbox, mailbox, "pw")
        crm_user = CrmUser.objects.create(organization=org, name=mailbox, login=mailbox)
        profiles.append(SyncProfile.objects.create(
            organization=org, user=user_, mailbox=mailbox, crm_user=crm_user,
            connection=mailbox_connection, active=True))
    return connection, profiles


@pytest.fixture
def acme(raynetsim: RaynetHandle) -> tuple[CrmConnection, list[SyncProfile]]:  # noqa: F811
    return organization("Acme", raynetsim, raynetsim.instance, raynetsim.user,
                        raynetsim.api_key, ["alice@acme.example", "adam@acme.example"])


@pytest.fixture
def globex(raynetsim: RaynetHandle) -> tuple[CrmConnection, list[SyncProfile]]:  # noqa: F811
    raynetsim.control.add_instance("globex", [
        {"email": GLOBEX_USER, "api_key": GLOBEX_KEY, "full_name": "Gina Globex"}])
    return organization("Globex", raynetsim, "globex", GLOBEX_USER, GLOBEX_KEY,
                        ["gina@globex.example"])


def queued() -> list[tuple[int, str]]:
    """The syncs waiting in django-q2's queue: (profile id, agenda)."""
    return sorted((q.args()[0], q.args()[1]) for q in OrmQ.objects.all())


class Listening:
    """The listener's CRM side, as `manage.py listen` runs it each tick: the watch read, the
    due syncs queued (through the real enqueue, into django-q2's broker)."""

    def __init__(self, debounce: float = 0.3) -> None:
        self.listener = Listener(debounce=debounce)
        self.watch = RaynetWatch(EVENTS_LOOKED_UP)
        self.watch.changes()   # from now on

    def settle(self) -> None:
        """Tick until nothing more is due (the debounce has passed)."""
        self.listener._crm_changes(self.watch)
        deadline = time.monotonic() + self.listener.debounce + 5
        while self.listener._due and time.monotonic() < deadline:
            time.sleep(0.05)
            self.listener._crm_changes(self.watch)
            self.listener._flush()


def add_persons(sim: RaynetHandle, instance: str, count: int) -> list[int]:
    return [sim.control.add_record(instance, "person", {"firstName": "P", "lastName": str(i)})
            for i in range(count)]


def post(url: str, token: str | None, body: bytes = b"{}") -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-RAYNETCRM-Token"] = token
    request = urllib.request.Request(url, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_burst_of_raynet_edits_queues_one_sync_per_profile(
        raynetsim: RaynetHandle, acme: Any, globex: Any, public: Any) -> None:  # noqa: F811
    connection, (alice, adam) = acme
    listening = Listening()
    message = raynet_webhooks.register(connection)
    assert f"{public.url}/hooks/raynet/{connection.pk}/" in message
    add_persons(raynetsim, raynetsim.instance, 25)
    raynetsim.control.flush_webhooks()   # (raynetsim's own thread may send some first)
    sent = raynetsim.control.webhooks()
    assert len(sent["delivered"]) == 25 and not sent["failures"] and not sent["pending"]
    # Every delivery was taken, and journaled for Acme; nothing is queued by the request.
    assert RaynetWebhookEvent.objects.filter(organization=connection.organization).count() == 25
    assert queued() == []
    listening.settle()
    assert queued() == sorted([(alice.pk, Agenda.CONTACTS), (adam.pk, Agenda.CONTACTS)])
    # Edits arriving one by one, each read by its own tick of the listener, within the
    # debounce: still one sync each.
    OrmQ.objects.all().delete()
    listening.listener.debounce = 2.0
    for _ in range(5):
        add_persons(raynetsim, raynetsim.instance, 1)
        raynetsim.control.flush_webhooks()
        listening.listener._crm_changes(listening.watch)
        listening.listener._flush()
        time.sleep(0.2)
    assert queued() == []   # not yet: the debounce holds them
    listening.settle()
    assert queued() == sorted([(alice.pk, Agenda.CONTACTS), (adam.pk, Agenda.CONTACTS)])
    # A later edit is a later sync (the first ones still wait in the queue).
    OrmQ.objects.all().delete()
    client = RaynetClient(raynetsim.url, raynetsim.instance, raynetsim.user, raynetsim.api_key)
    person = add_persons(raynetsim, raynetsim.instance, 1)[0]
    client.call("DELETE", f"person/{person}/")
    raynetsim.control.flush_webhooks()
    listening.settle()
    assert queued() == sorted([(alice.pk, Agenda.CONTACTS), (adam.pk, Agenda.CONTACTS)])
    # The deletion is marked in the journal of known ids: the backend's next read has it.
    assert RaynetKnownRecord.objects.filter(entity="person", record_id=person,
                                            gone_at__isnull=False).exists()


def test_a_meeting_queues_the_calendars_that_know_it_or_all_when_none_does(
        raynetsim: RaynetHandle, acme: Any, public: Any) -> None:  # noqa: F811
    connection, (alice, adam) = acme
    listening = Listening()
    raynet_webhooks.register(connection)
    fields = {"title": "Review", "scheduledFrom": "2026-12-08 10:00",
              "scheduledTill": "2026-12-08 11:00", "priority": "DEFAULT"}
    known = raynetsim.control.add_record(raynetsim.instance, "meeting", fields)
    raynetsim.control.flush_webhooks()
    listening.settle()
    # A new meeting no profile knows: whose it is the delivery does not say, every calendar.
    assert queued() == sorted([(alice.pk, Agenda.CALENDAR), (adam.pk, Agenda.CALENDAR)])
    OrmQ.objects.all().delete()
    # Alice's sync linked it: an edit of it is Alice's calendar's only.
    Link.objects.create(profile=alice, agenda=Agenda.CALENDAR, crm_key=str(known),
                        remote_id="AAMk-known")
    client = RaynetClient(raynetsim.url, raynetsim.instance, raynetsim.user, raynetsim.api_key)
    client.call("POST", f"meeting/{known}/", body={"title": "Review, moved"})
    raynetsim.control.flush_webhooks()
    listening.settle()
    assert queued() == [(alice.pk, Agenda.CALENDAR)]


def test_a_wrong_or_missing_token_is_refused_and_queues_nothing(
        raynetsim: RaynetHandle, acme: Any, public: Any) -> None:  # noqa: F811
    connection, _profiles = acme
    listening = Listening()
    raynet_webhooks.register(connection)
    url = f"{public.url}/hooks/raynet/{connection.pk}/"
    body = (b'{"eventId": "e1", "type": "record.updated", "source": "API", '
            b'"data": {"entityName": "Person", "entityId": 7, "extIds": []}}')
    assert post(url, "not-the-secret", body) == 403
    assert post(url, None, body) == 403
    assert post(url, "", body) == 403
    listening.settle()
    assert not RaynetWebhookEvent.objects.exists()
    assert queued() == []
    hook = RaynetWebhook.objects.get(connection=connection)
    assert hook.refused == 3 and hook.last_refused is not None
    # The right token is taken, once per event even when Raynet sends it again.
    assert post(url, hook.get_secret(), body) == 204
    assert post(url, hook.get_secret(), body) == 204
    assert RaynetWebhookEvent.objects.count() == 1
    # A GET is not a delivery.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 405


def test_one_organizations_hook_never_reaches_another_organizations_profiles(
        raynetsim: RaynetHandle, acme: Any, globex: Any, public: Any) -> None:  # noqa: F811
    (acme_connection, acme_profiles), (globex_connection, (gina,)) = acme, globex
    listening = Listening()
    raynet_webhooks.register(acme_connection)
    raynet_webhooks.register(globex_connection)
    acme_secret = RaynetWebhook.objects.get(connection=acme_connection).get_secret()
    # Acme's secret at Globex's address: refused (each hook takes its own secret only).
    body = (b'{"eventId": "x1", "type": "record.updated", "instanceName": "globex", '
            b'"data": {"entityName": "Person", "entityId": 1, "extIds": []}}')
    assert post(f"{public.url}/hooks/raynet/{globex_connection.pk}/", acme_secret,
                body) == 403
    # Acme's own address with its secret, naming Globex's instance in the payload: it is
    # Acme's event all the same (the organization is the hook's, never the payload's).
    assert post(f"{public.url}/hooks/raynet/{acme_connection.pk}/", acme_secret,
                body) == 204
    add_persons(raynetsim, raynetsim.instance, 3)
    raynetsim.control.flush_webhooks()
    listening.settle()
    assert queued() == sorted((p.pk, Agenda.CONTACTS) for p in acme_profiles)
    assert not RaynetWebhookEvent.objects.filter(
        organization=globex_connection.organization).exists()
    # Globex's edits queue Globex's profile only.
    OrmQ.objects.all().delete()
    add_persons(raynetsim, "globex", 2)
    raynetsim.control.flush_webhooks()
    listening.settle()
    assert queued() == [(gina.pk, Agenda.CONTACTS)]


def test_a_hook_registered_for_another_instance_is_refused(
        raynetsim: RaynetHandle, acme: Any, public: Any) -> None:  # noqa: F811
    connection, _profiles = acme
    raynet_webhooks.register(connection)
    secret = RaynetWebhook.objects.get(connection=connection).get_secret()
    connection.settings = {**connection.settings, "instance": "elsewhere"}
    connection.save()
    body = (b'{"eventId": "e2", "type": "record.created", '
            b'"data": {"entityName": "person", "entityId": 3, "extIds": []}}')
    assert post(f"{public.url}/hooks/raynet/{connection.pk}/", secret, body) == 403
    assert not RaynetWebhookEvent.objects.exists()


def test_registering_again_replaces_the_hook(
        raynetsim: RaynetHandle, acme: Any, public: Any) -> None:  # noqa: F811
    connection, _profiles = acme
    client = RaynetClient(raynetsim.url, raynetsim.instance, raynetsim.user, raynetsim.api_key)
    # A hook left at our address by an earlier installation, and someone else's.
    url = f"{public.url}/hooks/raynet/{connection.pk}/"
    client.call("PUT", "webhook/", body={"url": url, "secretToken": "old",
                                         "events": ["record.updated"]})
    client.call("PUT", "webhook/", body={"url": "https://elsewhere.example/hook",
                                         "events": ["record.created"]})
    raynet_webhooks.register(connection)
    first = RaynetWebhook.objects.get(connection=connection)
    raynet_webhooks.register(connection)
    second = RaynetWebhook.objects.get(connection=connection)
    hooks = client.get("webhook/")["data"]["webhooks"]
    ours = [hook for hook in hooks if hook["url"] == url]
    assert [hook["webhookId"] for hook in ours] == [second.hook_id]
    assert second.hook_id != first.hook_id and second.get_secret() != first.get_secret()
    assert ours[0]["secretToken"] == second.get_secret()
    others = [hook["url"] for hook in hooks if hook["url"] != url]
    assert others == ["https://elsewhere.example/hook"]
    assert sorted(ours[0]["eventsFilter"]) == sorted(raynet_webhooks.EVENTS)


def test_without_a_public_address_webhooks_are_off_in_words(acme: Any) -> None:
    connection, _profiles = acme
    with override_settings(PUBLIC_BASE_URL=""):
        done, message = raynet_webhooks.register_and_say(connection)
    assert done is None
    assert "PUBLIC_BASE_URL" in message and "interval" in message
    assert not RaynetWebhook.objects.exists()


def test_the_journal_keeps_two_weeks(acme: Any) -> None:
    connection, _profiles = acme
    old = RaynetWebhookEvent.objects.create(organization=connection.organization,
                                            event="record.deleted", entity="person",
                                            entity_id=1, event_id="old")
    RaynetWebhookEvent.objects.filter(pk=old.pk).update(
        received=timezone.now() - raynet_webhooks.KEPT_FOR - dt.timedelta(minutes=1))
    RaynetWebhookEvent.objects.create(organization=connection.organization,
                                      event="record.deleted", entity="person", entity_id=2,
                                      event_id="new")
    assert raynet_webhooks.prune() == 1
    assert list(RaynetWebhookEvent.objects.values_list("entity_id", flat=True)) == [2]
