"""Two-way sync with Raynet where both sides hold records first: a first sync that matches
(a contact and a person of one e-mail address, an event and a meeting of one iCal UID)
rather than doubling them, and deletions both ways under each policy: deleted in Exchange,
deleted in Raynet (found by the full comparison of ids, or told by a webhook). ewsim and
raynetsim over HTTP (every Raynet request and answer validated against Raynet's
specification by the fixture). Edits both ways: test_raynet_sync.py; a series with
exceptions: test_raynet_calendar.py; killed runs: test_raynet_crashes.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from engine.crmstore import raynet_webhooks
from engine.crmstore.raynet import RaynetCrm
from engine.models import Link, Run
from engine.records import ContactRecord, EventRecord, Kind
from ewsim.testing import SimHandle
from profiles.models import CrmConnection, SyncProfile
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.raynet_helpers import (  # noqa: F401
    TOMORROW,
    UID,
    add_exchange_event,
    comparison_due,
    in_exchange,
    meetings,
    persons_by_address,
    profile,
    public,
    raynet_of,
    run,
    someone_elses_client,
    weekly_series,
)
from tests.engine.sync_helpers import add_contact, exchange_contacts, exchange_events

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_first_contacts_sync_links_a_contact_and_a_person_of_one_address(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    eva_item = add_contact(ewsim, "Eva", "Nová", email="eva@acme.cz", company="Acme a.s.")
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    crm = raynet_of(raynetsim)
    # The address written otherwise in Raynet (case does not matter).
    eva = crm.create(Kind.CONTACTS, ContactRecord(first_name="Eva", last_name="Nová",
                                                  email1="Eva@Acme.cz", company="Acme a.s."),
                     "")
    assert eva.ok, eva
    first = run(profile, "contacts")
    # Petr made in Raynet; Eva linked, made on neither side.
    assert (first.crm_created, first.remote_created) == (1, 0)
    assert Link.objects.get(profile=profile, remote_id=eva_item).crm_key == eva.key
    assert sorted(persons_by_address(crm)) == ["Eva@Acme.cz", "petr@stavby.cz"]
    assert sorted(r.email1.lower() for r in exchange_contacts(ewsim).values()) \
        == ["eva@acme.cz", "petr@stavby.cz"]
    assert run(profile, "contacts").items.count() == 0

    # Deleted in Exchange under the contacts' default policy: only no longer synced; the
    # person stays in Raynet.
    ewsim.control.delete_item(eva_item)
    deleted = run(profile, "contacts")
    assert list(deleted.items.values_list("action", "crm_key")) == [("unlink", eva.key)]
    assert "Eva@Acme.cz" in persons_by_address(crm)
    assert run(profile, "contacts").items.count() == 0


def test_contacts_deleted_on_either_side_are_deleted_on_the_other_under_propagate(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    settings = profile.contactsettings
    settings.deletion_policy = "propagate"
    settings.save()
    # A card with a company and no job title: Raynet holds the position "–" for it.
    petr_item = add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz",
                            company="Stavby Brno s.r.o.")
    crm = raynet_of(raynetsim)
    eva = crm.create(Kind.CONTACTS, ContactRecord(first_name="Eva", last_name="Nová",
                                                  email1="eva@acme.cz"), "")
    assert eva.ok, eva
    assert run(profile, "contacts").crm_created == 1
    petr_key, petr = persons_by_address(crm)["petr@stavby.cz"]
    assert (petr.company, petr.job_title) == ("Stavby Brno s.r.o.", "")
    assert exchange_contacts(ewsim)[petr_item].job_title == ""

    ewsim.control.delete_item(petr_item)
    someone_elses_client(raynetsim).call("DELETE", f"person/{eva.key}/")
    comparison_due(raynetsim)   # Raynet's deletion seen at the next full comparison of ids
    deleted = run(profile, "contacts")
    assert sorted(deleted.items.values_list("action", "crm_key")) \
        == [("delete_crm", petr_key), ("delete_remote", eva.key)]
    assert persons_by_address(crm) == {} and exchange_contacts(ewsim) == {}
    assert not Link.objects.filter(profile=profile).exists()
    assert run(profile, "contacts").items.count() == 0


def test_a_first_calendar_sync_links_an_event_and_a_meeting_of_one_uid(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    shared = EventRecord(subject="Společná", start=TOMORROW + dt.timedelta(hours=5),
                         end=TOMORROW + dt.timedelta(hours=6), uid=UID, kind="single")
    crm = raynet_of(raynetsim)
    meeting = crm.create(Kind.CALENDAR, shared, "")
    assert meeting.ok, meeting
    item_id = in_exchange(ewsim, shared)
    add_exchange_event(ewsim, "Jen v Outlooku", TOMORROW)
    first = run(profile, "calendar")
    assert (first.crm_created, first.remote_created) == (1, 0)
    assert Link.objects.get(profile=profile, remote_id=item_id).crm_key == meeting.key
    assert meetings(raynetsim) == {"Společná": 1, "Jen v Outlooku": 1}
    assert sorted(e.subject for e in exchange_events(ewsim).values()) \
        == ["Jen v Outlooku", "Společná"]
    assert run(profile, "calendar").items.count() == 0


def test_meetings_and_series_deleted_on_either_side_are_deleted_on_the_other(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    single = add_exchange_event(ewsim, "Schůzka", TOMORROW)
    series = in_exchange(ewsim, weekly_series())
    crm = raynet_of(raynetsim)
    call = crm.create(Kind.CALENDAR, EventRecord(
        subject="Call Eva", start=TOMORROW + dt.timedelta(days=1),
        end=TOMORROW + dt.timedelta(days=1, hours=1)), "")
    assert call.ok, call
    assert run(profile, "calendar").crm_created == 2
    assert meetings(raynetsim) == {"Schůzka": 1, "Porada": 1, "Porada (přesunutá)": 1,
                                   "Call Eva": 1}

    # The calendar's default policy carries deletions over: a single event and a series
    # deleted in Exchange (the series' moved occurrence with it), a meeting in Raynet.
    ewsim.control.delete_item(single)
    ewsim.control.delete_item(series)
    someone_elses_client(raynetsim).call("DELETE", f"meeting/{call.key}/")
    comparison_due(raynetsim)
    deleted = run(profile, "calendar")
    assert sorted(deleted.items.values_list("action", flat=True)) \
        == ["delete_crm", "delete_crm", "delete_remote"]
    assert meetings(raynetsim) == {} and exchange_events(ewsim) == {}
    assert not Link.objects.filter(profile=profile).exists()
    assert run(profile, "calendar").items.count() == 0


def test_a_deletion_a_webhook_tells_is_carried_at_the_next_run_not_an_hour_on(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile,  # noqa: F811
        public: Any) -> None:  # noqa: F811
    connection = CrmConnection.objects.get(organization_id=profile.organization_id)
    # Webhooks are delivered only by flush_webhooks(), while this thread waits for it: the
    # live server that takes them shares this thread's in-memory database connection, and
    # a delivery in the background could run a statement in the middle of one of ours.
    raynetsim.control.settings(webhooks_paused=True)
    raynet_webhooks.register(connection)
    crm = raynet_of(raynetsim)
    call = crm.create(Kind.CALENDAR, EventRecord(
        subject="Call Eva", start=TOMORROW, end=TOMORROW + dt.timedelta(hours=1)), "")
    assert call.ok, call
    assert run(profile, "calendar").remote_created == 1
    assert run(profile, "calendar").items.count() == 0
    someone_elses_client(raynetsim).call("DELETE", f"meeting/{call.key}/")
    raynetsim.control.flush_webhooks()
    # The full comparison of ids is not due (it ran at the first run, minutes ago).
    deleted = run(profile, "calendar")
    assert deleted.status == Run.Status.SUCCESS
    assert list(deleted.items.values_list("action", "crm_key")) \
        == [("delete_remote", call.key)]
    assert exchange_events(ewsim) == {}
    assert run(profile, "calendar").items.count() == 0


def test_with_events_a_first_sync_links_events_of_one_uid_looked_up_together(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    connection = CrmConnection.objects.get(organization_id=profile.organization_id)
    connection.settings["activity"] = "event"
    connection.update_secrets({"api_key": raynetsim.api_key})
    connection.save()
    crm = RaynetCrm(raynet_of(raynetsim).client, raynetsim.user_person_id, activity="event")
    # More than two at once: looked up in one list of the events, not one by one.
    for i in range(3):
        shared = EventRecord(subject=f"Společná {i}", start=TOMORROW + dt.timedelta(hours=i),
                             end=TOMORROW + dt.timedelta(hours=i, minutes=30),
                             uid=f"{UID}{i}", kind="single")
        assert crm.create(Kind.CALENDAR, shared, "").ok
        in_exchange(ewsim, shared)
    first = run(profile, "calendar")
    assert (first.crm_created, first.remote_created) == (0, 0)
    assert Link.objects.filter(profile=profile).count() == 3
    assert sorted(str(r["title"]) for r in crm.client.pages("event", {})) \
        == [f"Společná {i}" for i in range(3)]
    assert len(exchange_events(ewsim)) == 3
    assert run(profile, "calendar").items.count() == 0
