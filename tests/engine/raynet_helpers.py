"""A profile whose organization is on raynetsim, Raynet as a person there sees it, a weekly
series to sync, and the live test server as Raynet's webhooks reach it; with the CRM-side
helpers of sync_helpers the Raynet tests use alongside.

The fixtures ask for `ewsim`, `raynetsim` and `live_server`: a test module that imports them
imports `raynetsim` and `raynetsim_server` from raynetsim.testing too."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from crm.models import CrmUser
from engine.crmstore.raynet import RaynetCrm
from engine.crmstore.raynet_client import RaynetClient
from engine.crmstore.raynet_cursor import FULL_EVERY
from engine.mailbox.ews import EwsMailbox
from engine.models import RaynetInstance
from engine.records import EventRecord, Kind, RecurrenceRule
from ewsim.testing import SimHandle
from profiles.models import CrmConnection, SyncProfile
from raynetsim.testing import RaynetHandle
from tests.engine.conftest import access_to
from tests.engine.sync_helpers import (
    TOMORROW,
    add_exchange_event,
    events_by_subject,
    make_profile,
    persons_by_address,
    run,
)

__all__ = [
    "MONDAY", "PRAGUE", "TODAY", "TOMORROW", "UID", "add_exchange_event", "comparison_due",
    "connect_to_raynet", "events_by_subject", "in_exchange", "meetings", "on_raynet",
    "persons_by_address", "profile", "public", "raynet_of", "run", "shape",
    "someone_elses_client", "weekly_series",
]

PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
TODAY = dt.datetime.now(PRAGUE).date()
MONDAY = TODAY + dt.timedelta(days=7 - TODAY.weekday())      # next week's Monday

UID = "040000008200E00074C5B7101A82E0080000000012345"


@pytest.fixture
def profile(ewsim: SimHandle, raynetsim: RaynetHandle) -> SyncProfile:
    """Alice's profile (every contact of the instance), its organization on raynetsim; its
    CRM user's login is the Raynet user's e-mail."""
    return on_raynet(make_profile(ewsim), raynetsim)


@pytest.fixture
def public(live_server: Any) -> Iterator[Any]:
    """The live test server, the product's public address: where Raynet's webhooks post."""
    with override_settings(PUBLIC_BASE_URL=live_server.url):
        yield live_server


def connect_to_raynet(connection: CrmConnection, sim: RaynetHandle) -> CrmConnection:
    """The CRM connection made a Raynet one: raynetsim's instance, as its user, and saved."""
    connection.kind = "raynet"
    connection.settings = {"base_url": sim.url, "instance": sim.instance, "user": sim.user}
    connection.update_secrets({"api_key": sim.api_key})
    connection.save()
    return connection


def on_raynet(profile: SyncProfile, sim: RaynetHandle) -> SyncProfile:
    """The profile's organization put on raynetsim; its CRM user's login the Raynet user's
    e-mail."""
    CrmUser.objects.filter(pk=profile.crm_user_id).update(login=sim.user)
    connect_to_raynet(CrmConnection.objects.get(organization_id=profile.organization_id), sim)
    return profile


def raynet_of(sim: RaynetHandle) -> RaynetCrm:
    """Raynet as its user sees it: what a person there edits."""
    return RaynetCrm(RaynetClient(sim.url, sim.instance, sim.user, sim.api_key),
                     sim.user_person_id)


def someone_elses_client(sim: RaynetHandle) -> RaynetClient:
    """Raynet as a person in its web app changes it: past the sync's journal."""
    return RaynetClient(sim.url, sim.instance, sim.user, sim.api_key)


def comparison_due(sim: RaynetHandle) -> None:
    """An hour passes since the last full comparison of ids."""
    row = RaynetInstance.objects.get(key__endswith=f"/{sim.instance}")
    long_ago = (timezone.now() - FULL_EVERY - dt.timedelta(minutes=1)).isoformat()
    row.compared = {entity: long_ago for entity in row.compared}
    row.save()


def meetings(sim: RaynetHandle) -> Counter[str]:
    """Raynet's meetings by their title."""
    return Counter(str(r["title"]) for r in raynet_of(sim).client.pages("meeting", {}))


def weekly_series() -> EventRecord:
    """Four Mondays at 10:00 Prague time; the second moved two hours later, the third
    deleted."""
    local = dt.datetime.combine(MONDAY, dt.time(10), PRAGUE)
    start, end = local.astimezone(dt.UTC), (local + dt.timedelta(hours=1)).astimezone(dt.UTC)
    second = (local + dt.timedelta(weeks=1)).astimezone(dt.UTC)
    third = (local + dt.timedelta(weeks=2)).astimezone(dt.UTC)
    moved = EventRecord(subject="Porada (přesunutá)", start=second + dt.timedelta(hours=2),
                        end=second + dt.timedelta(hours=3), location="Zasedačka 2",
                        original_start=second, kind="exception")
    return EventRecord(
        subject="Porada", start=start, end=end, time_zone="Europe/Prague", location="Zasedačka",
        recurrence=RecurrenceRule(pattern="weekly", weekdays=("Monday",), start=MONDAY,
                                  count=4),
        exceptions=[moved], deleted_occurrences=(third,), kind="master")


def in_exchange(sim: SimHandle, record: EventRecord) -> str:
    """The record created in Alice's Calendar through the EWS backend: its item id."""
    with EwsMailbox(access_to(sim)) as mailbox:
        folder = mailbox.get_folder("calendar", Kind.CALENDAR)
        (result,) = mailbox.create(folder, [record])
    assert result.ok and result.ref, result.message
    return result.ref.id


def shape(record: EventRecord) -> tuple[object, ...]:
    """What both sides must agree on of a series."""
    return (record.subject, record.start, record.end, record.recurrence,
            [(e.subject, e.start, e.end, e.original_start) for e in record.exceptions],
            record.deleted_occurrences)
