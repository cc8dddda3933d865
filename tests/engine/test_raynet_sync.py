"""The engine end to end against Raynet: an organization whose CRM connection names the
Raynet kind syncs its contacts both ways through `engine.sync.sync`, with ewsim and
raynetsim over HTTP (every Raynet request and answer validated against Raynet's
specification by the fixture)."""

from __future__ import annotations

import datetime as dt

import pytest

from crm.models import CrmUser
from engine.models import Link, Run
from engine.records import ContactRecord, EventRecord, Kind
from engine.sync import sync
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.raynet_helpers import (  # noqa: F401
    TOMORROW,
    add_exchange_event,
    events_by_subject,
    persons_by_address,
    profile,
    raynet_of,
    run,
)
from tests.engine.sync_helpers import add_contact, exchange_contacts, exchange_events

pytestmark = pytest.mark.django_db(transaction=True)


def test_contacts_sync_both_ways_with_raynet(ewsim: SimHandle, raynetsim: RaynetHandle,  # noqa: F811
                                            profile: SyncProfile) -> None:  # noqa: F811
    item_id = add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz",
                          company="Stavby Brno s.r.o.")
    crm = raynet_of(raynetsim)
    eva = crm.create(Kind.CONTACTS, ContactRecord(first_name="Eva", last_name="Nová",
                                                  email1="eva@acme.cz", job_title="Nákup",
                                                  company="Acme a.s."), "")
    assert eva.ok, eva
    first = run(profile, "contacts")
    assert (first.crm_created, first.remote_created) == (1, 1)
    petr_key, petr = persons_by_address(crm)["petr@stavby.cz"]
    assert (petr.first_name, petr.last_name, petr.company) \
        == ("Petr", "Svoboda", "Stavby Brno s.r.o.")
    # Its identity: the Exchange item it came from, as a Raynet external id.
    assert crm.find_by_origin(Kind.CONTACTS, [item_id]) == {item_id: petr_key}
    in_exchange = {r.email1: r for r in exchange_contacts(ewsim).values()}
    assert (in_exchange["eva@acme.cz"].job_title, in_exchange["eva@acme.cz"].company) \
        == ("Nákup", "Acme a.s.")
    assert crm.key_from_stamp(Kind.CONTACTS, in_exchange["eva@acme.cz"].stamp) == eva.key
    assert set(Link.objects.filter(profile=profile).values_list("crm_key", flat=True)) \
        == {petr_key, eva.key}
    assert run(profile, "contacts").items.count() == 0   # nothing new

    # A change on each side reaches the other on the next run.
    ewsim.control.update_item(item_id, JobTitle="Jednatel")
    assert crm.update(Kind.CONTACTS, eva.key, ContactRecord(phone_mobile="+420 603 111 222"),
                      frozenset({"phone_mobile"})).ok
    changed = run(profile, "contacts")
    assert (changed.crm_updated, changed.remote_updated) == (1, 1)
    assert persons_by_address(crm)["petr@stavby.cz"][1].job_title == "Jednatel"
    in_exchange = {r.email1: r for r in exchange_contacts(ewsim).values()}
    assert in_exchange["eva@acme.cz"].phone_mobile == "+420 603 111 222"

    # A person deleted in Raynet: found missing by comparing the ids known with today's,
    # and (the contacts' default policy) unlinked, its Exchange copy kept.
    assert crm.delete(Kind.CONTACTS, eva.key).ok
    deleted = run(profile, "contacts")
    assert list(deleted.items.values_list("action", "crm_key")) == [("unlink", eva.key)]
    assert "eva@acme.cz" in {r.email1 for r in exchange_contacts(ewsim).values()}
    assert run(profile, "contacts").items.count() == 0   # told once


def test_the_calendar_syncs_both_ways_with_raynet(ewsim: SimHandle, raynetsim: RaynetHandle,  # noqa: F811
                                                 profile: SyncProfile) -> None:  # noqa: F811
    item_id = add_exchange_event(ewsim, "Schůzka", TOMORROW)
    crm = raynet_of(raynetsim)
    call = crm.create(Kind.CALENDAR, EventRecord(
        subject="Call Eva", start=TOMORROW + dt.timedelta(days=1, hours=5),
        end=TOMORROW + dt.timedelta(days=1, hours=6)), "")
    assert call.ok, call
    first = run(profile, "calendar")
    assert (first.crm_created, first.remote_created) == (1, 1)
    meeting_key, meeting = events_by_subject(crm)["Schůzka"]
    assert (meeting.start, meeting.end) == (TOMORROW, TOMORROW + dt.timedelta(hours=1))
    assert crm.in_scope(Kind.CALENDAR, [meeting_key]) == {meeting_key}
    in_exchange = {r.subject: r for r in exchange_events(ewsim).values()}
    assert in_exchange["Call Eva"].start == TOMORROW + dt.timedelta(days=1, hours=5)
    assert run(profile, "calendar").items.count() == 0   # nothing new

    ewsim.control.update_item(item_id, Location="Zasedačka")
    assert crm.update(Kind.CALENDAR, call.key, EventRecord(location="Telefon"),
                      frozenset({"location"})).ok
    changed = run(profile, "calendar")
    assert (changed.crm_updated, changed.remote_updated) == (1, 1)
    assert events_by_subject(crm)["Schůzka"][1].location == "Zasedačka"
    assert {r.subject: r for r in exchange_events(ewsim).values()}["Call Eva"].location \
        == "Telefon"


def test_a_used_up_daily_budget_fails_the_run_and_the_next_one_goes_on(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    raynetsim.control.budget(raynetsim.instance, daily_limit=100, used=100)
    stopped = sync(SyncProfile.objects.get(pk=profile.pk), "contacts")
    assert (stopped.status, stopped.crm_created) == (Run.Status.FAILED, 0)
    raynetsim.control.budget(raynetsim.instance, daily_limit=24_000, used=0)
    assert run(profile, "contacts").crm_created == 1


def test_a_crm_user_raynet_does_not_know_is_said_on_each_record_it_would_own(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    CrmUser.objects.filter(pk=profile.crm_user_id).update(login="nobody@example.com")
    stopped = sync(SyncProfile.objects.get(pk=profile.pk), "contacts")
    assert (stopped.status, stopped.crm_created) == (Run.Status.PARTIAL, 0)
    (detail,) = stopped.items.values_list("detail", flat=True)
    assert "Raynet has no user nobody@example.com" in detail
