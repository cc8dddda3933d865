"""What Raynet cannot hold stays in Exchange, end to end (engine/crmstore/unheld.py): an
Exchange contact's middle name, department, third e-mail, business address and home phone,
an event's time zone and all-day flag are neither written to Raynet nor compared with it, so
an edit made in Raynet reaches Exchange without blanking them, and no run rewrites anything
after it. ewsim and raynetsim over HTTP, every Raynet request validated by the fixture."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from engine.crmstore.raynet import RaynetCrm
from engine.models import Link
from engine.records import ContactRecord, EventRecord, Kind, PostalAddress
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.raynet_helpers import (  # noqa: F401
    events_by_subject,
    persons_by_address,
    profile,
    raynet_of,
    run,
)
from tests.engine.sync_helpers import exchange_contacts, exchange_events

pytestmark = pytest.mark.django_db(transaction=True)

LONDON = zoneinfo.ZoneInfo("Europe/London")


def add_full_contact(sim: SimHandle, given: str, surname: str, email: str) -> str:
    """A contact with every kind of field Raynet lacks (elements in the schema's order)."""
    xml = (f"<t:Contact><t:DisplayName>{given} Jan {surname}</t:DisplayName>"
           f"<t:GivenName>{given}</t:GivenName><t:MiddleName>Jan</t:MiddleName>"
           "<t:CompanyName>Stavby Brno s.r.o.</t:CompanyName><t:EmailAddresses>"
           f'<t:Entry Key="EmailAddress1">{email}</t:Entry>'
           f'<t:Entry Key="EmailAddress3">{given.lower()}@gmail.example</t:Entry>'
           "</t:EmailAddresses><t:PhysicalAddresses>"
           '<t:Entry Key="Business"><t:Street>Nádražní 1</t:Street><t:City>Praha</t:City>'
           "</t:Entry>"
           '<t:Entry Key="Home"><t:Street>Lipová 5</t:Street><t:City>Brno</t:City></t:Entry>'
           "</t:PhysicalAddresses><t:PhoneNumbers>"
           '<t:Entry Key="HomePhone">+420 541 000 111</t:Entry>'
           '<t:Entry Key="MobilePhone">+420 603 000 111</t:Entry>'
           "</t:PhoneNumbers><t:Department>Obchod</t:Department>"
           f"<t:Surname>{surname}</t:Surname></t:Contact>")
    return sim.control.create_item(sim.user, folder="contacts", xml=xml, tag="Contact")["id"]


def only_in_exchange(record: ContactRecord) -> tuple[object, ...]:
    return (record.middle_name, record.department, record.email3, record.business_address,
            record.phone_home)


IN_EXCHANGE = ("Jan", "Obchod", "petr@gmail.example", PostalAddress("Nádražní 1", "Praha"),
               "+420 541 000 111")


def test_what_raynet_cannot_hold_of_a_contact_stays_in_exchange(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    item_id = add_full_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    first = run(profile, "contacts")
    assert first.crm_created == 1
    crm = raynet_of(raynetsim)
    key, person = persons_by_address(crm)["petr@stavby.cz"]
    # What Raynet holds got there, the home address (its private address) too.
    assert (person.first_name, person.last_name, person.phone_mobile, person.home_address) \
        == ("Petr", "Svoboda", "+420 603 000 111", PostalAddress("Lipová 5", "Brno"))
    raw = crm.client.get(f"person/{key}/")["data"]
    assert "Jan" not in str(raw) and "Obchod" not in str(raw), raw
    assert run(profile, "contacts").items.count() == 0

    # An edit in Raynet reaches Exchange; what Raynet has no field for stays as it was.
    assert crm.update(Kind.CONTACTS, key, ContactRecord(phone_mobile="+420 777 123 456"),
                      frozenset({"phone_mobile"})).ok
    edited = run(profile, "contacts")
    assert (edited.crm_updated, edited.remote_updated) == (0, 1)
    contact = exchange_contacts(ewsim)[item_id]
    assert contact.phone_mobile == "+420 777 123 456"
    assert only_in_exchange(contact) == IN_EXCHANGE
    assert contact.home_address == PostalAddress("Lipová 5", "Brno")
    # Nothing is rewritten on either side on the following runs.
    version = crm.fetch(Kind.CONTACTS, [key])[key].version
    again = run(profile, "contacts")
    assert (again.items.count(), again.crm_updated, again.remote_updated) == (0, 0, 0)
    assert crm.fetch(Kind.CONTACTS, [key])[key].version == version

    # An Exchange edit of a field Raynet lacks is no change to carry: Raynet is not written.
    ewsim.control.update_item(item_id, Department="Nákup")
    unheld_edit = run(profile, "contacts")
    assert (unheld_edit.crm_updated, unheld_edit.remote_updated) == (0, 0)
    assert crm.fetch(Kind.CONTACTS, [key])[key].version == version
    assert exchange_contacts(ewsim)[item_id].department == "Nákup"


def test_a_contact_matched_with_a_raynet_person_keeps_what_raynet_lacks(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    """A first link (by e-mail) fills the empty fields of each side from the other: Raynet's
    empty middle name is none of them, nor is it Exchange's to lose later."""
    crm = raynet_of(raynetsim)
    made = crm.create(Kind.CONTACTS, ContactRecord(first_name="Petr", last_name="Svoboda",
                                                   email1="petr@stavby.cz",
                                                   company="Stavby Brno s.r.o."), "")
    assert made.ok, made
    item_id = add_full_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    first = run(profile, "contacts")
    assert (first.crm_created, first.remote_created) == (0, 0)
    assert Link.objects.get(profile=profile).crm_key == made.key
    assert only_in_exchange(exchange_contacts(ewsim)[item_id]) == IN_EXCHANGE
    assert crm.update(Kind.CONTACTS, made.key, ContactRecord(note="Volat ráno"),
                      frozenset({"note"})).ok
    edited = run(profile, "contacts")
    assert edited.remote_updated == 1
    contact = exchange_contacts(ewsim)[item_id]
    assert (contact.note, only_in_exchange(contact)) == ("Volat ráno", IN_EXCHANGE)
    assert run(profile, "contacts").items.count() == 0


def add_london_event(sim: SimHandle, subject: str, start: dt.datetime, end: dt.datetime,
                     *, all_day: bool = False) -> str:
    flag = "<t:IsAllDayEvent>true</t:IsAllDayEvent>" if all_day else ""
    xml = (f"<t:CalendarItem><t:Subject>{subject}</t:Subject>"
           f"<t:Start>{start.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}</t:Start>"
           f"<t:End>{end.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}</t:End>{flag}"
           '<t:StartTimeZone Id="GMT Standard Time"/>'
           '<t:EndTimeZone Id="GMT Standard Time"/></t:CalendarItem>')
    return sim.control.create_item(sim.user, folder="calendar", xml=xml,
                                   tag="CalendarItem")["id"]


def test_an_events_zone_and_all_day_flag_stay_in_exchange(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    """Raynet's meeting has neither: an edit made in Raynet leaves an all-day event all-day
    and a London meeting in London's zone (the server's is Prague's)."""
    day = dt.datetime.now(LONDON).date() + dt.timedelta(days=2)
    midnight = dt.datetime.combine(day, dt.time(), LONDON)
    holiday = add_london_event(ewsim, "Dovolená", midnight, midnight + dt.timedelta(days=1),
                               all_day=True)
    call_start = dt.datetime.combine(day, dt.time(15), LONDON)
    call = add_london_event(ewsim, "Call London", call_start,
                            call_start + dt.timedelta(hours=1))
    before = exchange_events(ewsim)
    assert (before[holiday].all_day, before[holiday].time_zone) == (True, "Europe/London")
    assert (before[call].all_day, before[call].time_zone) == (False, "Europe/London")
    first = run(profile, "calendar")
    assert first.crm_created == 2
    crm: RaynetCrm = raynet_of(raynetsim)
    meetings = events_by_subject(crm)
    assert (meetings["Dovolená"][1].start, meetings["Dovolená"][1].end) \
        == (before[holiday].start, before[holiday].end)
    assert run(profile, "calendar").items.count() == 0

    for subject, key_and_record in meetings.items():
        assert crm.update(Kind.CALENDAR, key_and_record[0],
                          EventRecord(subject=f"{subject} (Raynet)"), frozenset({"subject"})).ok
    edited = run(profile, "calendar")
    assert (edited.crm_updated, edited.remote_updated) == (0, 2)
    after = exchange_events(ewsim)
    assert (after[holiday].subject, after[holiday].all_day, after[holiday].time_zone) \
        == ("Dovolená (Raynet)", True, "Europe/London")
    assert (after[holiday].start, after[holiday].end) == (before[holiday].start,
                                                          before[holiday].end)
    assert (after[call].subject, after[call].all_day, after[call].time_zone) \
        == ("Call London (Raynet)", False, "Europe/London")
    again = run(profile, "calendar")
    assert (again.items.count(), again.crm_updated, again.remote_updated) == (0, 0, 0)

    # Moved in Raynet: the new time reaches Exchange, written in the event's own zone.
    later = call_start + dt.timedelta(hours=2)
    assert crm.update(Kind.CALENDAR, meetings["Call London"][0],
                      EventRecord(start=later, end=later + dt.timedelta(hours=1)),
                      frozenset({"start", "end"})).ok
    assert run(profile, "calendar").remote_updated == 1
    moved = exchange_events(ewsim)[call]
    assert (moved.start, moved.time_zone, moved.all_day) \
        == (later.astimezone(dt.UTC), "Europe/London", False)
    assert run(profile, "calendar").items.count() == 0
