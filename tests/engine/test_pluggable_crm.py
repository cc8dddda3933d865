"""The engine end to end against a CRM that is not the built-in store: an organization whose CRM
connection names the in-memory kind ("memory", tests/settings.py) syncs its contacts and
calendar and imports its mail through `engine.sync.sync`, with ewsim over HTTP, while the
built-in store of that organization stays untouched; switching the kind in the admin makes
the next sync use the new one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client

from crm.models import Company, Email, Event, Person
from engine.models import Link
from engine.records import ContactRecord, EventRecord, Kind
from ewsim.testing import SimHandle
from profiles.models import CrmConnection, Membership, SyncProfile
from tests.engine.crmstore import memory_store
from tests.engine.sync_helpers import (
    TOMORROW,
    add_contact,
    add_exchange_event,
    crm_of,
    events_by_subject,
    exchange_contacts,
    exchange_events,
    make_profile,
    persons_by_address,
    run,
    use_kind,
)
from tests.mailimport.conftest import mime

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def profile(ewsim: SimHandle) -> Iterator[SyncProfile]:
    """Alice's profile (every person of the organization), its organization on the in-memory
    CRM."""
    profile = make_profile(ewsim)
    use_kind(profile, "memory")
    # Organization ids come back after the suite empties the database: start clean.
    memory_store.forget(str(profile.organization_id))
    yield profile
    memory_store.forget(str(profile.organization_id))


def assert_built_in_store_untouched(profile: SyncProfile) -> None:
    organization_id = profile.organization_id
    for model in (Person, Company, Event, Email):
        assert not model.objects.filter(organization_id=organization_id).exists(), model


def test_contacts_sync_both_ways_with_the_in_memory_crm(ewsim: SimHandle,
                                                       profile: SyncProfile) -> None:
    item_id = add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz",
                          company="Stavby Brno s.r.o.")
    crm = crm_of(profile)
    eva = crm.create(Kind.CONTACTS, ContactRecord(first_name="Eva", last_name="Nová",
                                                  email1="eva@acme.cz", job_title="Nákup"), "")
    assert eva.ok, eva
    first = run(profile, "contacts")
    assert (first.crm_created, first.remote_created) == (1, 1)
    petr_key, petr = persons_by_address(crm)["petr@stavby.cz"]
    assert (petr.first_name, petr.last_name, petr.company) \
        == ("Petr", "Svoboda", "Stavby Brno s.r.o.")
    assert crm.find_by_origin(Kind.CONTACTS, [item_id]) == {item_id: petr_key}
    in_exchange = {r.email1: r for r in exchange_contacts(ewsim).values()}
    assert in_exchange["eva@acme.cz"].job_title == "Nákup"
    # The Exchange copy carries the in-memory CRM's stamp (the identity the engine recovers by).
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
    assert_built_in_store_untouched(profile)


def test_the_calendar_syncs_both_ways_with_the_in_memory_crm(ewsim: SimHandle,
                                                            profile: SyncProfile) -> None:
    item_id = add_exchange_event(ewsim, "Schůzka", TOMORROW)
    crm = crm_of(profile)
    call = crm.create(Kind.CALENDAR, EventRecord(
        subject="Call Eva", start=TOMORROW + dt.timedelta(days=1, hours=5),
        end=TOMORROW + dt.timedelta(days=1, hours=6), time_zone="Europe/Prague"), "")
    assert call.ok, call
    first = run(profile, "calendar")
    assert (first.crm_created, first.remote_created) == (1, 1)
    meeting_key, meeting = events_by_subject(crm)["Schůzka"]
    assert (meeting.start, meeting.end) == (TOMORROW, TOMORROW + dt.timedelta(hours=1))
    # Created for the profile's CRM user: among the user's own events.
    assert crm.in_scope(Kind.CALENDAR, [meeting_key]) == {meeting_key}
    in_exchange = {r.subject: r for r in exchange_events(ewsim).values()}
    assert in_exchange["Call Eva"].start == TOMORROW + dt.timedelta(days=1, hours=5)

    ewsim.control.update_item(item_id, Location="Zasedačka")
    assert crm.update(Kind.CALENDAR, call.key, EventRecord(
        subject="Call Eva", start=TOMORROW, end=TOMORROW, location="Telefon"),
        frozenset({"location"})).ok
    changed = run(profile, "calendar")
    assert (changed.crm_updated, changed.remote_updated) == (1, 1)
    assert events_by_subject(crm)["Schůzka"][1].location == "Zasedačka"
    assert {r.subject: r for r in exchange_events(ewsim).values()}["Call Eva"].location \
        == "Telefon"
    assert_built_in_store_untouched(profile)


def test_mail_is_filed_in_the_in_memory_crm(ewsim: SimHandle, profile: SyncProfile) -> None:
    crm = crm_of(profile)
    petr = crm.create(Kind.CONTACTS, ContactRecord(first_name="Petr", last_name="Svoboda",
                                                   email1="Petr@Stavby.cz",
                                                   company="Stavby s.r.o."), "")
    ewsim.control.deliver(ewsim.user, mime=mime("Nabídka", message_id="<a1@stavby.cz>"))
    imported = run(profile, "mail")
    assert imported.crm_created == 1
    store = memory_store.store_of(str(profile.organization_id))
    ((key, email),) = store.emails.items()
    assert (email.message_id, email.subject) == ("<a1@stavby.cz>", "Nabídka")
    assert email.users == {str(profile.crm_user_id)}
    assert memory_store.email_links(str(profile.organization_id), key) == (
        {petr.key}, {crm.find_or_create_company("Stavby s.r.o.")})
    assert set(crm.filed_emails(str(profile.crm_user_id), [email.origin])) == {email.origin}
    assert run(profile, "mail").items.count() == 0   # filed already
    assert_built_in_store_untouched(profile)


def test_switching_the_kind_in_the_admin_makes_the_next_sync_use_it(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    use_kind(profile, "builtin")
    add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    run(profile, "contacts")
    assert Person.objects.filter(organization_id=profile.organization_id,
                                 email1="petr@stavby.cz").exists()

    admin = User.objects.create_user("bob", "bob@example.com", "pw")
    Membership.objects.create(user=admin, organization=profile.organization,
                              role=Membership.Role.ADMIN)
    client = Client()
    client.force_login(admin)
    connection = CrmConnection.objects.get(organization_id=profile.organization_id)
    response = client.post(f"/admin/profiles/crmconnection/{connection.pk}/change/",
                           {"kind": "memory"})
    assert response.status_code == 302, response.content[:2000]
    connection.refresh_from_db()
    assert connection.kind == "memory"
    said = [str(m) for m in client.get(response["Location"]).context["messages"]]
    assert any("reaches another CRM" in message for message in said), said

    add_contact(ewsim, "Jana", "Malá", email="jana@stavby.cz")
    run(profile, "contacts")
    crm = crm_of(profile)
    assert "jana@stavby.cz" in persons_by_address(crm)
    assert not Person.objects.filter(organization_id=profile.organization_id,
                                     email1="jana@stavby.cz").exists()


def test_a_contact_linked_before_the_switch_reaches_the_new_crm(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    use_kind(profile, "builtin")
    item_id = add_contact(ewsim, "Petr", "Svoboda", email="petr@stavby.cz")
    run(profile, "contacts")
    use_kind(profile, "memory")
    ewsim.control.update_item(item_id, JobTitle="Jednatel")
    run(profile, "contacts")
    assert persons_by_address(crm_of(profile))["petr@stavby.cz"][1].job_title == "Jednatel"
