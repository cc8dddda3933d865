"""A worker killed mid-run against Raynet, at every kill point the run passes, then another
run: contacts and the calendar two-way, records on both sides, some matched (an e-mail
address, an iCal UID), a series with a moved and a deleted occurrence; a first sync, edits
both ways, deletions both ways; and a 429 in the middle of a series' write. Raynet's writes
are HTTP requests, not part of the database transaction a crash rolls back: what Raynet was
sent stays, and the next run must find it again (by its external id, `find_by_origin`;
Exchange's copies by their stamps), never create it a second time. ewsim and raynetsim over
HTTP (every Raynet request and answer validated against Raynet's specification by the
fixture)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from typing import Any

import pytest
from django.utils import timezone

from engine.crmstore.raynet_mapping import CONTACTS_ONLY
from engine.mailbox import open_mailbox
from engine.mailbox.base import Update
from engine.mailbox.ews import EwsMailbox
from engine.models import Lease, Link, Run
from engine.records import ContactRecord, EventRecord, Kind
from engine.run.journal import Killed
from engine.sync import crm_for, runner_class, sync
from ewsim.testing import SimHandle
from profiles.models import CrmConnection, SyncProfile
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.conftest import access_to
from tests.engine.raynet_helpers import (  # noqa: F401
    TOMORROW,
    UID,
    add_exchange_event,
    comparison_due,
    events_by_subject,
    in_exchange,
    meetings,
    persons_by_address,
    profile,
    raynet_of,
    run,
    shape,
    someone_elses_client,
    weekly_series,
)
from tests.engine.sync_helpers import add_contact, exchange_contacts, exchange_events

pytestmark = pytest.mark.django_db(transaction=True)

# How many kill points (engine/run/: "crm write", "remote writes", "link recorded", "remote
# batch handled", "remote page checkpointed", "remote deletions done", "crm deletion done")
# each scenario's run
# passes; each test kills one run at each of them in turn, and
# test_each_scenario_passes_the_kill_points_counted says the counts still hold.
CONTACT_POINTS = 21
CALENDAR_POINTS = 19
DELETION_POINTS = 12
EDIT_POINTS = 14
CALENDAR_DELETION_POINTS = 15
CALENDAR_EDIT_POINTS = 14


def killed_at(profile: SyncProfile, agenda: str, nth: int) -> str:  # noqa: F811
    """A run whose worker dies at the `nth` kill point it reaches (from 0); its lease then
    expires as a dead worker's would. The point's label."""
    passed: list[str] = []

    def kill(point: str) -> None:
        if len(passed) == nth:
            raise Killed(point)
        passed.append(point)

    profile = SyncProfile.objects.get(pk=profile.pk)
    with pytest.raises(Killed) as died, open_mailbox(profile) as mailbox:
        runner_class(agenda)(profile, mailbox, crm_for(profile, agenda), checkpoint=kill).run()
    Lease.objects.filter(profile=profile).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1))
    return str(died.value)


def points_passed(profile: SyncProfile, agenda: str) -> list[str]:  # noqa: F811
    """A whole run's kill points, in order."""
    passed: list[str] = []
    profile = SyncProfile.objects.get(pk=profile.pk)
    with open_mailbox(profile) as mailbox:
        done = runner_class(agenda)(profile, mailbox, crm_for(profile, agenda),
                                    checkpoint=passed.append).run()
    assert done.status == Run.Status.SUCCESS, done.message
    return passed


def creates(sim: RaynetHandle, entity: str) -> int:
    return sum(1 for e in sim.server.request_log
               if (e["method"], e["path"]) == ("PUT", f"/api/v2/{entity}/"))


def persons(sim: RaynetHandle) -> Counter[str]:
    """Raynet's contacts (persons without a user account) by their e-mail address."""
    rows = raynet_of(sim).client.pages("person", dict(CONTACTS_ONLY))
    return Counter(address_of(r) for r in rows)


def address_of(row: dict[str, Any]) -> str:
    return str((row.get("contactInfo") or {}).get("email") or "")


def contacts_on_both_sides(sim: SimHandle, raynet: RaynetHandle) -> Counter[str]:
    """Three contacts only in Exchange, three persons only in Raynet, and Eva on both sides
    (one address: matched, linked, never doubled). Every address once, as it must end."""
    for i in range(3):
        add_contact(sim, f"Ex{i}", "Kontakt", email=f"ex{i}@stavby.cz",
                    company="Stavby Brno s.r.o.")
    add_contact(sim, "Eva", "Nová", email="eva@acme.cz", job_title="Nákup")
    crm = raynet_of(raynet)
    for i in range(3):
        assert crm.create(Kind.CONTACTS, ContactRecord(first_name=f"Crm{i}", last_name="Osoba",
                                                       email1=f"crm{i}@acme.cz"), "").ok
    assert crm.create(Kind.CONTACTS, ContactRecord(first_name="Eva", last_name="Nová",
                                                   email1="eva@acme.cz", job_title="Nákup"),
                      "").ok
    return Counter([*(f"ex{i}@stavby.cz" for i in range(3)),
                    *(f"crm{i}@acme.cz" for i in range(3)), "eva@acme.cz"])


def calendars_on_both_sides(sim: SimHandle, raynet: RaynetHandle) -> EventRecord:
    """Two events and a series with a moved and a deleted occurrence only in Exchange, two
    meetings only in Raynet, and one on both sides (one iCal UID). The series."""
    for i in range(2):
        add_exchange_event(sim, f"Exchange {i}", TOMORROW + dt.timedelta(hours=i))
    series = weekly_series()
    in_exchange(sim, series)
    crm = raynet_of(raynet)
    for i in range(2):
        assert crm.create(Kind.CALENDAR, EventRecord(
            subject=f"Raynet {i}", start=TOMORROW + dt.timedelta(days=1, hours=i),
            end=TOMORROW + dt.timedelta(days=1, hours=i + 1)), "").ok
    shared = EventRecord(subject="Společná", start=TOMORROW + dt.timedelta(hours=5),
                         end=TOMORROW + dt.timedelta(hours=6), uid=UID, kind="single")
    assert crm.create(Kind.CALENDAR, shared, "").ok
    in_exchange(sim, shared)
    return series


@pytest.mark.parametrize("nth", range(CONTACT_POINTS))
def test_contacts_killed_at_each_point_then_run_again_leave_no_duplicate_and_lose_nothing(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile,  # noqa: F811
        nth: int) -> None:
    expected = contacts_on_both_sides(ewsim, raynetsim)
    made_before = creates(raynetsim, "person")

    killed_at(profile, "contacts", nth)
    again = run(profile, "contacts")
    assert persons(raynetsim) == expected, again.message
    assert Counter(r.email1 for r in exchange_contacts(ewsim).values()) == expected
    assert Link.objects.filter(profile=profile).count() == 7
    # Each Exchange contact made in Raynet once: a create the crash cut off from its link
    # (they are sent four at a time, raynet_bulk.py) is found by its external id, never
    # sent again.
    assert creates(raynetsim, "person") - made_before == 3
    assert run(profile, "contacts").items.count() == 0


@pytest.mark.parametrize("nth", range(CALENDAR_POINTS))
def test_the_calendar_killed_at_each_point_then_run_again_leaves_no_duplicate(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile,  # noqa: F811
        nth: int) -> None:
    series = calendars_on_both_sides(ewsim, raynetsim)
    made_before = creates(raynetsim, "meeting")

    killed_at(profile, "calendar", nth)
    again = run(profile, "calendar")
    # The series is two meetings in Raynet: its first occurrence and its moved one.
    assert meetings(raynetsim) == Counter({
        "Exchange 0": 1, "Exchange 1": 1, "Raynet 0": 1, "Raynet 1": 1, "Společná": 1,
        "Porada": 1, "Porada (přesunutá)": 1}), again.message
    in_outlook = list(exchange_events(ewsim).values())
    assert Counter(e.subject for e in in_outlook) == Counter({
        "Exchange 0": 1, "Exchange 1": 1, "Raynet 0": 1, "Raynet 1": 1, "Společná": 1,
        "Porada": 1})
    (back,) = [e for e in in_outlook if e.subject == "Porada"]
    assert shape(back) == shape(series)
    assert Link.objects.filter(profile=profile).count() == 6
    assert creates(raynetsim, "meeting") - made_before == 4
    assert run(profile, "calendar").items.count() == 0


def deletions_on_both_sides(sim: SimHandle, raynet: RaynetHandle,
                            profile: SyncProfile) -> None:  # noqa: F811
    """After a first sync with deletions carried over (contacts' policy "propagate"): a
    contact deleted in Exchange, a person deleted in Raynet by someone (seen at the next
    full comparison of ids, made due). The contact deleted in Exchange has a company and no
    job title: Raynet holds the position "–" for it, which once read back as an edit made in
    Raynet, so the deletion was refused and the contact made again in Exchange."""
    settings = profile.contactsettings
    settings.deletion_policy = "propagate"
    settings.save()
    run(profile, "contacts")
    by_address = {r.email1: item for item, r in exchange_contacts(sim).items()}
    sim.control.delete_item(by_address["ex0@stavby.cz"])
    (key,) = [r["id"] for r in raynet_of(raynet).client.pages("person", dict(CONTACTS_ONLY))
              if address_of(r) == "crm0@acme.cz"]
    someone_elses_client(raynet).call("DELETE", f"person/{key}/")
    comparison_due(raynet)


@pytest.mark.parametrize("nth", range(DELETION_POINTS))
def test_deletions_killed_at_each_point_are_carried_over_by_the_next_run(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile,  # noqa: F811
        nth: int) -> None:
    expected = contacts_on_both_sides(ewsim, raynetsim)
    deletions_on_both_sides(ewsim, raynetsim, profile)
    expected -= Counter(["ex0@stavby.cz", "crm0@acme.cz"])

    killed_at(profile, "contacts", nth)
    again = run(profile, "contacts")
    assert persons(raynetsim) == expected, again.message
    assert Counter(r.email1 for r in exchange_contacts(ewsim).values()) == expected
    assert Link.objects.filter(profile=profile).count() == 5
    assert run(profile, "contacts").items.count() == 0


def test_with_events_a_run_killed_after_its_creates_finds_them_by_their_external_ids(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    connection = CrmConnection.objects.get(organization_id=profile.organization_id)
    connection.settings["activity"] = "event"
    connection.update_secrets({"api_key": raynetsim.api_key})
    connection.save()
    # More than two at once: looked up in one list of the activity's records, not one by one.
    for i in range(3):
        add_exchange_event(ewsim, f"Exchange {i}", TOMORROW + dt.timedelta(hours=i))
    assert killed_at(profile, "calendar", 0) == "crm write"   # the creates sent, not linked
    assert creates(raynetsim, "event") == 3
    run(profile, "calendar")
    events = Counter(str(r["title"]) for r in raynet_of(raynetsim).client.pages("event", {}))
    assert events == Counter({f"Exchange {i}": 1 for i in range(3)})
    assert creates(raynetsim, "event") == 3
    assert Counter(e.subject for e in exchange_events(ewsim).values()) \
        == Counter({f"Exchange {i}": 1 for i in range(3)})
    assert run(profile, "calendar").items.count() == 0


def edits_on_both_sides(sim: SimHandle, raynet: RaynetHandle, profile: SyncProfile  # noqa: F811
                        ) -> None:
    """After a first sync: two contacts edited in Exchange (their Raynet persons updated
    together, raynet_bulk.update_many), two persons edited in Raynet by someone."""
    run(profile, "contacts")
    by_address = {r.email1: item for item, r in exchange_contacts(sim).items()}
    for i in (1, 2):
        sim.control.update_item(by_address[f"ex{i}@stavby.cz"], JobTitle=f"Jednatel {i}")
    crm = raynet_of(raynet)
    keys = {address_of(r): str(r["id"])
            for r in crm.client.pages("person", dict(CONTACTS_ONLY))}
    for i in (1, 2):
        assert crm.update(Kind.CONTACTS, keys[f"crm{i}@acme.cz"],
                          ContactRecord(phone_mobile=f"+420 603 111 22{i}"),
                          frozenset({"phone_mobile"})).ok


def calendar_deletions_on_both_sides(sim: SimHandle, raynet: RaynetHandle,
                                     profile: SyncProfile) -> None:  # noqa: F811
    """After a first sync (the calendar carries deletions over by default): an event and
    the series deleted in Exchange, a meeting deleted in Raynet by someone (seen at the
    next full comparison of ids, made due)."""
    run(profile, "calendar")
    by_subject = {r.subject: item for item, r in exchange_events(sim).items()}
    sim.control.delete_item(by_subject["Exchange 0"])
    sim.control.delete_item(by_subject["Porada"])
    (key,) = [r["id"] for r in raynet_of(raynet).client.pages("meeting", {})
              if r["title"] == "Raynet 0"]
    someone_elses_client(raynet).call("DELETE", f"meeting/{key}/")
    comparison_due(raynet)


@pytest.mark.parametrize(("agenda", "setup", "counted"), [
    ("contacts", lambda sim, raynet, _: contacts_on_both_sides(sim, raynet), CONTACT_POINTS),
    ("calendar", lambda sim, raynet, _: calendars_on_both_sides(sim, raynet),
     CALENDAR_POINTS),
    ("contacts", lambda sim, raynet, who: (contacts_on_both_sides(sim, raynet),
                                               deletions_on_both_sides(sim, raynet, who)),
     DELETION_POINTS),
    ("contacts", lambda sim, raynet, who: (contacts_on_both_sides(sim, raynet),
                                               edits_on_both_sides(sim, raynet, who)),
     EDIT_POINTS),
    ("calendar", lambda sim, raynet, who: (
        calendars_on_both_sides(sim, raynet),
        calendar_deletions_on_both_sides(sim, raynet, who)), CALENDAR_DELETION_POINTS),
    ("calendar", lambda sim, raynet, who: (
        calendars_on_both_sides(sim, raynet),
        calendar_edits_on_both_sides(sim, raynet, who)), CALENDAR_EDIT_POINTS),
], ids=["contacts", "calendar", "deletions", "edits", "calendar deletions", "calendar edits"])
def test_each_scenario_passes_the_kill_points_counted(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile,  # noqa: F811
        agenda: str, setup: Any, counted: int) -> None:
    setup(ewsim, raynetsim, profile)
    passed = points_passed(profile, agenda)
    assert len(passed) == counted, ", ".join(passed)


@pytest.mark.parametrize("nth", range(EDIT_POINTS))
def test_edits_killed_at_each_point_reach_the_other_side_at_the_next_run(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile,  # noqa: F811
        nth: int) -> None:
    expected = contacts_on_both_sides(ewsim, raynetsim)
    edits_on_both_sides(ewsim, raynetsim, profile)

    killed_at(profile, "contacts", nth)
    again = run(profile, "contacts")
    assert persons(raynetsim) == expected, again.message
    assert Counter(r.email1 for r in exchange_contacts(ewsim).values()) == expected
    in_outlook = {r.email1: r for r in exchange_contacts(ewsim).values()}
    in_raynet = {a: r for a, (_, r) in persons_by_address(raynet_of(raynetsim)).items()}
    for i in (1, 2):
        for record in (in_outlook, in_raynet):
            assert record[f"ex{i}@stavby.cz"].job_title == f"Jednatel {i}"
            assert record[f"crm{i}@acme.cz"].phone_mobile == f"+420 603 111 22{i}"
    assert Link.objects.filter(profile=profile).count() == 7
    assert run(profile, "contacts").items.count() == 0


@pytest.mark.parametrize("nth", range(CALENDAR_DELETION_POINTS))
def test_calendar_deletions_killed_at_each_point_are_carried_over_by_the_next_run(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile,  # noqa: F811
        nth: int) -> None:
    calendars_on_both_sides(ewsim, raynetsim)
    calendar_deletions_on_both_sides(ewsim, raynetsim, profile)

    killed_at(profile, "calendar", nth)
    again = run(profile, "calendar")
    # The series' moved occurrence went with it.
    left = Counter({"Exchange 1": 1, "Raynet 1": 1, "Společná": 1})
    assert meetings(raynetsim) == left, again.message
    assert Counter(e.subject for e in exchange_events(ewsim).values()) == left
    assert Link.objects.filter(profile=profile).count() == 3
    assert run(profile, "calendar").items.count() == 0


def test_a_429_between_a_series_and_its_moved_occurrence_is_finished_by_the_next_run(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile) -> None:  # noqa: F811
    series = weekly_series()
    in_exchange(ewsim, series)
    # The budget runs out once the series' meeting is made, at the look-up of its moved
    # occurrence's meeting (by external id, before it is made).
    raynetsim.control.fault("http_429", path=r"GET /api/v2/meeting/ext/exception", count=-1)
    stopped = sync(SyncProfile.objects.get(pk=profile.pk), "calendar")
    assert stopped.status == Run.Status.FAILED
    assert "used up its daily request budget" in stopped.message
    assert meetings(raynetsim) == Counter({"Porada": 1})
    raynetsim.control.clear_faults()
    again = run(profile, "calendar")
    assert meetings(raynetsim) == Counter({"Porada": 1, "Porada (přesunutá)": 1}), again.message
    (back,) = exchange_events(ewsim).values()
    assert shape(back) == shape(series)
    assert creates(raynetsim, "meeting") == 2
    assert run(profile, "calendar").items.count() == 0


def calendar_edits_on_both_sides(sim: SimHandle, raynet: RaynetHandle,
                                 profile: SyncProfile) -> None:  # noqa: F811
    """After a first sync: an event's place edited in Exchange, the series' place too and its
    last occurrence moved (a new moved occurrence's meeting in Raynet); two meetings' places
    edited in Raynet by someone."""
    run(profile, "calendar")
    with EwsMailbox(access_to(sim)) as mailbox:
        folder = mailbox.get_folder("calendar", Kind.CALENDAR)
        found = {c.record.subject: (c.ref, c.record) for page in mailbox.read_changes(folder, None)
                 for c in page.changes if isinstance(c.record, EventRecord)}
        ref, series = found["Porada"]
        assert series.start is not None
        last = series.start + dt.timedelta(weeks=3)
        moved = EventRecord(subject="Porada (dřív)", start=last - dt.timedelta(hours=1),
                            end=last, original_start=last, kind="exception")
        (result,) = mailbox.update(Kind.CALENDAR, [Update(ref, dataclasses.replace(
            series, exceptions=[*series.exceptions, moved], location="Zasedačka 3"),
            frozenset({"exceptions", "location"}))])
        assert result.ok, result
    sim.control.update_item(found["Exchange 1"][0].id, Location="Zasedačka")
    crm = raynet_of(raynet)
    for row in crm.client.pages("meeting", {}):
        if row["title"] in ("Raynet 0", "Raynet 1"):
            someone_elses_client(raynet).call("POST", f"meeting/{row['id']}/",
                                              body={"meetingPlace": f"Kavárna {row['title']}"})


@pytest.mark.parametrize("nth", range(CALENDAR_EDIT_POINTS))
def test_calendar_edits_killed_at_each_point_reach_the_other_side_at_the_next_run(
        ewsim: SimHandle, raynetsim: RaynetHandle, profile: SyncProfile,  # noqa: F811
        nth: int) -> None:
    calendars_on_both_sides(ewsim, raynetsim)
    calendar_edits_on_both_sides(ewsim, raynetsim, profile)

    killed_at(profile, "calendar", nth)
    again = run(profile, "calendar")
    # The new moved occurrence's meeting made once: looked up by its external id first.
    assert meetings(raynetsim) == Counter({
        "Exchange 0": 1, "Exchange 1": 1, "Raynet 0": 1, "Raynet 1": 1, "Společná": 1,
        "Porada": 1, "Porada (přesunutá)": 1, "Porada (dřív)": 1}), again.message
    in_outlook = {e.subject: e for e in exchange_events(ewsim).values()}
    assert sorted(in_outlook) == sorted(["Exchange 0", "Exchange 1", "Raynet 0", "Raynet 1",
                                         "Společná", "Porada"])
    assert [e.subject for e in in_outlook["Porada"].exceptions] \
        == ["Porada (přesunutá)", "Porada (dřív)"]
    in_raynet = {subject: record for subject, (_, record)
                 in events_by_subject(raynet_of(raynetsim)).items()}
    assert [e.subject for e in in_raynet["Porada"].exceptions] \
        == ["Porada (přesunutá)", "Porada (dřív)"]
    for subject, place in (("Exchange 1", "Zasedačka"), ("Porada", "Zasedačka 3"),
                           ("Raynet 0", "Kavárna Raynet 0"),
                           ("Raynet 1", "Kavárna Raynet 1")):
        assert (in_outlook[subject].location, in_raynet[subject].location) == (place, place)
    assert Link.objects.filter(profile=profile).count() == 6
    assert run(profile, "calendar").items.count() == 0
