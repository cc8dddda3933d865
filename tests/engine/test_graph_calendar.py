"""Calendar end to end on Exchange Online: the runner, the built-in CRM and ewsim's Graph
front door (calendarView delta over the profile's window, series masters with their
exceptions), on a real database; the connection's kind picks the Graph backend."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from crm.models import Event, Person
from engine.models import Link, Run
from engine.records import Kind, RecurrenceRule
from ewsim.testing import SimHandle
from tests.engine.graph_sync_helpers import make_graph_profile, run_graph
from tests.engine.sync_helpers import exchange_events as events_by_id
from tests.engine.test_calendar_sync import add_exchange_event, crm_event

pytestmark = pytest.mark.django_db(transaction=True)
PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")


def at(days: int, hour: int, minute: int = 0) -> dt.datetime:
    today = dt.datetime.now(PRAGUE).date()
    return dt.datetime.combine(today + dt.timedelta(days=days), dt.time(hour, minute), PRAGUE)


def exchange_events(sim: SimHandle) -> dict[str, object]:
    """Alice's events (singles and masters), read through EWS: the other backend."""
    from tests.engine.sync_helpers import exchange_events as through_ews

    return {r.subject: r for r in through_ews(sim).values()}  # type: ignore[union-attr]


def test_a_first_sync_through_graph_copies_events_both_ways(ewsim: SimHandle) -> None:
    profile = make_graph_profile(ewsim)
    Person.objects.create(organization_id=profile.organization_id, first_name="Jana",
                          email1="jana@acme.cz")
    attendees = ("<t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>jana@acme.cz"
                 "</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>")
    add_exchange_event(ewsim, "Schůzka", at(1, 10), extra=attendees)
    add_exchange_event(ewsim, "Far away", at(120, 10))
    crm_event(profile, "Call Eva", at(2, 14))
    run = run_graph(profile, "calendar")
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.crm_created, run.remote_created) == (1, 1)
    imported = Event.objects.get(subject="Schůzka")
    assert imported.start == at(1, 10)
    assert [p.email1 for p in imported.persons.all()] == ["jana@acme.cz"]
    in_exchange = exchange_events(ewsim)
    assert in_exchange["Call Eva"].start == at(2, 14)   # type: ignore[attr-defined]
    assert in_exchange["Call Eva"].stamp                # type: ignore[attr-defined]
    assert "Far away" not in set(Event.objects.values_list("subject", flat=True))
    assert ewsim.control.invitations() == []

    again = run_graph(profile, "calendar")
    assert again.status == Run.Status.SUCCESS, again.message
    assert again.items.count() == 0


def test_a_series_with_an_exception_reaches_the_crm_and_edits_come_back(
        ewsim: SimHandle) -> None:
    from engine.mailbox import open_mailbox
    from engine.records import EventRecord

    profile = make_graph_profile(ewsim)
    first = at(1, 9)
    moved = EventRecord(subject="Moved standup", start=at(8, 11), end=at(8, 11, 30),
                        original_start=at(8, 9).astimezone(dt.UTC), kind="exception")
    series = EventRecord(
        subject="Standup", start=first.astimezone(dt.UTC),
        end=(first + dt.timedelta(minutes=30)).astimezone(dt.UTC), time_zone="Europe/Prague",
        recurrence=RecurrenceRule("daily", 1, start=first.date(), count=10),
        exceptions=[moved], deleted_occurrences=(at(5, 9).astimezone(dt.UTC),))
    with open_mailbox(profile) as mailbox:   # written as another Graph client would
        folder = mailbox.get_folder("calendar", Kind.CALENDAR)
        (written,) = mailbox.create(folder, [series])
    assert written.ok, written
    run = run_graph(profile, "calendar")
    assert run.status == Run.Status.SUCCESS, run.message
    event = Event.objects.get(subject="Standup")
    assert event.recurrence and event.recurrence["range"]["count"] == 10

    event.location = "Room 2"
    event.save()
    run = run_graph(profile, "calendar")
    assert run.status == Run.Status.SUCCESS, run.message
    ews_view = exchange_events(ewsim)["Standup"]
    assert ews_view.location == "Room 2"                                   # type: ignore[attr-defined]
    assert [e.subject for e in ews_view.exceptions] == ["Moved standup"]  # type: ignore[attr-defined]
    assert ews_view.deleted_occurrences == (at(5, 9).astimezone(dt.UTC),)  # type: ignore[attr-defined]
    assert Link.objects.filter(profile=profile).count() == 1


def test_a_meeting_the_mailbox_organizes_is_never_changed_or_cancelled_through_graph(
        ewsim: SimHandle) -> None:
    # Through Graph, Exchange Online mails attendees an update on any change to a meeting the
    # mailbox organizes and a cancellation on its deletion; nothing says not to. So the CRM's
    # edit and deletion are left there, each said in the history, and nobody gets mail.
    profile = make_graph_profile(ewsim)
    attendees = ("<t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>jana@acme.cz"
                 "</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>")
    add_exchange_event(ewsim, "Board meeting", at(1, 10), extra=attendees)
    add_exchange_event(ewsim, "Site visit", at(2, 10), extra=attendees)
    add_exchange_event(ewsim, "Dentist", at(3, 10))
    assert run_graph(profile, "calendar").status == Run.Status.SUCCESS
    Event.objects.filter(subject="Board meeting").update(location="Room 7")
    Event.objects.filter(subject="Dentist").update(location="Brno")
    Event.objects.get(subject="Site visit").delete()

    run = run_graph(profile, "calendar")
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.remote_updated, run.remote_deleted, run.skipped) == (1, 0, 2)
    skipped = dict(run.items.filter(action="skip").values_list("title", "detail"))
    assert "would mail them an update" in skipped["Board meeting"]
    assert "would mail them a cancellation" in skipped["Site visit"]
    assert ewsim.control.invitations() == []
    in_exchange = exchange_events(ewsim)
    assert in_exchange["Board meeting"].location == ""      # type: ignore[attr-defined]
    assert in_exchange["Dentist"].location == "Brno"        # type: ignore[attr-defined]
    assert "Site visit" in in_exchange
    assert Link.objects.get(remote_id__isnull=False, title="Site visit").state == \
        Link.State.UNLINKED

    # Not tried again; an edit made in Outlook still comes to the CRM.
    assert run_graph(profile, "calendar").items.count() == 0
    board = next(i for i, r in events_by_id(ewsim).items()
                 if r.subject == "Board meeting")  # type: ignore[attr-defined]
    ewsim.control.update_item(board, xml="<t:CalendarItem><t:Location>Room 9</t:Location>"
                                         "</t:CalendarItem>")
    later = run_graph(profile, "calendar")
    assert later.crm_updated == 1, list(later.items.values_list("action", "detail"))
    assert Event.objects.get(subject="Board meeting").location == "Room 9"
    assert ewsim.control.invitations() == []


def test_a_run_with_nothing_changed_costs_one_request_even_with_series(
        ewsim: SimHandle) -> None:
    # The series check (a listing of the whole calendar) runs only in a round that removed an
    # occurrence; a round with nothing removed is one calendarView delta request.
    from engine.mailbox import open_mailbox
    from engine.records import EventRecord

    profile = make_graph_profile(ewsim)
    first = at(1, 9)
    series = EventRecord(
        subject="Standup", start=first.astimezone(dt.UTC),
        end=(first + dt.timedelta(minutes=30)).astimezone(dt.UTC), time_zone="Europe/Prague",
        recurrence=RecurrenceRule("daily", 1, start=first.date(), count=10),
        deleted_occurrences=(at(3, 9).astimezone(dt.UTC),))
    with open_mailbox(profile) as mailbox:
        (written,) = mailbox.create(mailbox.get_folder("calendar", Kind.CALENDAR), [series])
    assert written.ok, written
    add_exchange_event(ewsim, "Single", at(2, 10))
    assert run_graph(profile, "calendar").crm_created == 2
    run_graph(profile, "calendar")
    quiet = run_graph(profile, "calendar")
    assert (quiet.requests, quiet.items.count()) == (1, 0)


SHARED_UID = "040000008200E00074C5B7101A82E00800000000GRAPHDESC"
AGENDA = "Agenda:\n- stav zakázky"
ROOM = "Zasedačka 3"
JANA_ATTENDS = ("<t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>jana@acme.cz"
                "</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>")


def link_shared_review(sim: SimHandle, exchange_xml: str, **crm_fields: str) -> Run:
    """The same meeting on both sides by its UID, each with a field the other lacks; one run
    links them, and the next has nothing to do."""
    profile = make_graph_profile(sim)
    add_exchange_event(sim, "Review", at(3, 14), extra=f"{exchange_xml}<t:UID>{SHARED_UID}</t:UID>")
    crm_event(profile, "Review", at(3, 14), uid=SHARED_UID, **crm_fields)
    run = run_graph(profile, "calendar")
    assert run.status == Run.Status.SUCCESS, run.message
    again = run_graph(profile, "calendar")
    assert again.status == Run.Status.SUCCESS, again.message
    assert again.items.count() == 0
    return run


@pytest.mark.parametrize(("exchange_xml", "crm_fields"), [
    (f"<t:Location>{ROOM}</t:Location>", {"body": AGENDA}),
    (f'<t:Body BodyType="Text">{AGENDA}</t:Body>', {"location": ROOM}),
], ids=["description-from-the-crm", "description-from-exchange"])
def test_linking_a_shared_event_through_graph_fills_each_side_s_missing_field(
        ewsim: SimHandle, exchange_xml: str, crm_fields: dict[str, str]) -> None:
    run = link_shared_review(ewsim, exchange_xml, **crm_fields)
    assert (run.linked, run.crm_updated, run.remote_updated) == (1, 1, 1)
    review = Event.objects.get()
    assert (review.location, review.body) == (ROOM, AGENDA)
    in_exchange = exchange_events(ewsim)["Review"]
    assert (in_exchange.location, in_exchange.body) == (ROOM, AGENDA)  # type: ignore[attr-defined]


def test_a_shared_meeting_the_mailbox_organizes_gets_its_description_only_in_the_crm(
        ewsim: SimHandle) -> None:
    # A meeting this mailbox organizes, with an attendee: through Graph, Exchange Online would
    # mail the attendee an update for the description, so Exchange keeps its own (empty) one;
    # the CRM still gets the location, and nobody gets mail.
    run = link_shared_review(ewsim, f"<t:Location>{ROOM}</t:Location>{JANA_ATTENDS}",
                             body=AGENDA)
    assert (run.linked, run.crm_updated, run.remote_updated, run.skipped) == (1, 1, 0, 1)
    assert "would mail them an update" in run.items.get(action="skip").detail
    review = Event.objects.get()
    assert (review.location, review.body) == (ROOM, AGENDA)
    assert exchange_events(ewsim)["Review"].body == ""   # type: ignore[attr-defined]
    assert ewsim.control.invitations() == []
