"""A meeting several synced users attend: one CRM event, one link per user's copy.

An attendee deleting or declining their copy takes only themselves off the meeting; the CRM
event goes when its organizer deletes or cancels it, or when no synced user's copy remains
(docs/sync.md, "Shared meetings"). End to end against ewsim, through EWS and through Graph.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo

import pytest

from crm.models import CrmUser, Event, Person
from engine.models import Link, Run, RunItem
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.engine.graph_sync_helpers import make_graph_profile, run_graph
from tests.engine.sync_helpers import exchange_events, make_profile

pytestmark = pytest.mark.django_db(transaction=True)
PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@partner.example"
UID = "040000008200E00074C5B7101A82E00800000000D0C1A2B3C4D5E601000000000000000010000000"


def at(days: int, hour: int) -> dt.datetime:
    today = dt.datetime.now(PRAGUE).date()
    return dt.datetime.combine(today + dt.timedelta(days=days), dt.time(hour), PRAGUE)


def utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mailbox(address: str) -> str:
    return (f"<t:Mailbox><t:EmailAddress>{address}</t:EmailAddress>"
            "<t:RoutingType>SMTP</t:RoutingType></t:Mailbox>")


@dataclasses.dataclass
class Cast:
    sim: SimHandle
    alice: SyncProfile
    bob: SyncProfile

    def run(self, profile: SyncProfile) -> Run:
        run = run_graph(profile, "calendar")   # the product's entry point, either backend
        assert run.status == Run.Status.SUCCESS, run.message
        return run

    def meeting(self, mailbox: str, organizer: str, subject: str = "Review",
                start: dt.datetime | None = None, response: str = "Accept") -> str:
        """The copy of one meeting in `mailbox`, as Exchange keeps it there."""
        start = start or at(3, 14)
        attendees = "".join(f"<t:Attendee>{_mailbox(a)}</t:Attendee>"
                            for a in (ALICE, BOB, CAROL) if a != organizer)
        mine = "" if mailbox == organizer else f"<t:MyResponseType>{response}</t:MyResponseType>"
        xml = (f"<t:CalendarItem><t:Subject>{subject}</t:Subject><t:UID>{UID}</t:UID>"
               f"<t:Start>{utc(start)}</t:Start><t:End>{utc(start + dt.timedelta(hours=1))}"
               "</t:End>" + mine + f"<t:Organizer>{_mailbox(organizer)}</t:Organizer>"
               f"<t:RequiredAttendees>{attendees}</t:RequiredAttendees>"
               '<t:StartTimeZone Id="Central Europe Standard Time"/>'
               '<t:EndTimeZone Id="Central Europe Standard Time"/></t:CalendarItem>')
        return self.sim.control.create_item(mailbox, folder="calendar", xml=xml,
                                            tag="CalendarItem")["id"]

    def events_of(self, mailbox: str) -> list[str]:
        return sorted(e.subject for e in exchange_events(self.sim, mailbox).values())


@pytest.fixture(params=["ews", "graph"])
def cast(request: pytest.FixtureRequest, ewsim: SimHandle) -> Cast:
    from django.contrib.auth.models import User

    alice = (make_profile if request.param == "ews" else make_graph_profile)(ewsim)
    ewsim.control.add_user(BOB, "bob-pw")
    bob = SyncProfile.objects.create(
        organization_id=alice.organization_id, mailbox=BOB, user=User.objects.create_user("bob"),
        connection=alice.connection,
        crm_user=CrmUser.objects.create(organization_id=alice.organization_id, name="Bob",
                                        login="bob"))
    for name, address in (("Alice", ALICE), ("Bob", BOB), ("Carol", CAROL)):
        Person.objects.create(organization_id=alice.organization_id, first_name=name,
                              email1=address)
    return Cast(ewsim, alice, bob)


def participants(event: Event) -> list[str]:
    return sorted(p.email1 for p in event.persons.all())


def assert_nothing_sent(sim: SimHandle) -> None:
    assert sim.control.invitations() == []
    assert [e for e in sim.control.sent()
            if e.get("send_meeting_cancellations", "SendToNone") != "SendToNone"
            or e.get("send_meeting_invitations", "SendToNone") != "SendToNone"] == []


def test_an_attendee_deleting_their_copy_takes_only_themselves_off_the_meeting(
        cast: Cast) -> None:
    cast.meeting(ALICE, organizer=ALICE)
    bobs = cast.meeting(BOB, organizer=ALICE)
    cast.run(cast.alice)
    cast.run(cast.bob)
    event = Event.objects.get()
    assert participants(event) == [BOB, CAROL]
    assert Link.objects.filter(crm_key=str(event.pk)).count() == 2

    cast.sim.control.delete_item(bobs)
    run = cast.run(cast.bob)
    assert (run.crm_deleted, run.remote_deleted) == (0, 0)
    (item,) = run.items.all()
    assert item.action == RunItem.Action.UNLINK and item.title == "Review"
    assert "deleted your copy" in item.detail and "do not organize" in item.detail
    assert "the CRM event and the other attendees' copies stay" in item.detail
    event = Event.objects.get()
    assert participants(event) == [CAROL]
    assert not Link.objects.filter(profile=cast.bob).exists()

    later = cast.run(cast.alice)
    assert (later.crm_deleted, later.remote_deleted, later.items.count()) == (0, 0, 0)
    assert cast.events_of(ALICE) == ["Review"]
    assert Link.objects.get(profile=cast.alice).state == Link.State.ACTIVE
    again = cast.run(cast.bob)
    assert again.items.count() == 0 and cast.events_of(BOB) == []
    assert_nothing_sent(cast.sim)


def test_an_attendee_declining_takes_only_themselves_off_the_meeting(cast: Cast) -> None:
    # Bob's run comes first: the CRM event is his, and passes to Alice when he declines
    # (else his next run would copy "his" CRM event back into his calendar).
    cast.meeting(ALICE, organizer=CAROL)
    bobs = cast.meeting(BOB, organizer=CAROL)
    cast.run(cast.bob)
    cast.run(cast.alice)
    event = Event.objects.get()
    assert event.owner == cast.bob.crm_user

    cast.sim.control.update_item(bobs, xml="<t:CalendarItem><t:MyResponseType>Decline"
                                           "</t:MyResponseType></t:CalendarItem>")
    run = cast.run(cast.bob)
    assert (run.crm_deleted, run.remote_deleted) == (0, 0)
    (item,) = run.items.all()
    assert item.action == RunItem.Action.UNLINK
    assert "declined" in item.detail and CAROL in item.detail
    event = Event.objects.get()
    assert participants(event) == [ALICE]
    assert event.owner == cast.alice.crm_user
    assert cast.events_of(BOB) == ["Review"]   # his declined copy: left as he has it

    assert cast.run(cast.alice).items.count() == 0
    assert cast.run(cast.bob).items.count() == 0
    assert cast.events_of(ALICE) == ["Review"] and cast.events_of(BOB) == ["Review"]
    assert Event.objects.count() == 1
    assert_nothing_sent(cast.sim)


def test_the_organizer_deleting_the_meeting_deletes_it_for_every_synced_attendee(
        cast: Cast) -> None:
    cast.meeting(ALICE, organizer=BOB)
    bobs = cast.meeting(BOB, organizer=BOB)
    cast.run(cast.alice)
    cast.run(cast.bob)

    cast.sim.control.delete_item(bobs)
    run = cast.run(cast.bob)
    assert run.crm_deleted == 1
    (item,) = run.items.all()
    assert item.action == RunItem.Action.DELETE_CRM
    assert "organizer" in item.detail
    assert Event.objects.count() == 0

    later = cast.run(cast.alice)   # the deletion policy: propagate (calendar's default)
    assert later.remote_deleted == 1, list(later.items.values_list("action", "detail"))
    assert cast.events_of(ALICE) == []
    assert Link.objects.count() == 0
    assert_nothing_sent(cast.sim)


def test_a_meeting_its_organizer_cancelled_is_deleted_for_every_synced_attendee(
        cast: Cast) -> None:
    cast.meeting(ALICE, organizer=CAROL)
    bobs = cast.meeting(BOB, organizer=CAROL)
    cast.run(cast.alice)
    cast.run(cast.bob)

    # Exchange marks an attendee's copy cancelled when the organizer's cancellation arrives.
    cast.sim.control.update_item(bobs, xml="<t:CalendarItem><t:Subject>Canceled: Review"
                                           "</t:Subject><t:IsCancelled>true</t:IsCancelled>"
                                           "</t:CalendarItem>")
    run = cast.run(cast.bob)
    assert run.crm_deleted == 1, list(run.items.values_list("action", "detail"))
    (item,) = run.items.all()
    assert "cancelled" in item.detail
    assert Event.objects.count() == 0
    assert cast.events_of(BOB) == ["Canceled: Review"]   # his to remove from his calendar

    later = cast.run(cast.alice)
    assert later.remote_deleted == 1
    assert cast.events_of(ALICE) == []
    assert cast.run(cast.bob).items.count() == 0 and Event.objects.count() == 0
    assert_nothing_sent(cast.sim)


def test_the_crm_event_goes_when_no_synced_copy_remains(cast: Cast) -> None:
    alices = cast.meeting(ALICE, organizer=CAROL)
    bobs = cast.meeting(BOB, organizer=CAROL)
    cast.run(cast.alice)
    cast.run(cast.bob)

    cast.sim.control.delete_item(bobs)
    assert cast.run(cast.bob).crm_deleted == 0
    assert Event.objects.count() == 1

    cast.sim.control.delete_item(alices)
    run = cast.run(cast.alice)
    assert run.crm_deleted == 1
    assert Event.objects.count() == 0 and Link.objects.count() == 0


def test_a_crm_deletion_still_removes_every_synced_copy(cast: Cast) -> None:
    cast.meeting(ALICE, organizer=CAROL)
    cast.meeting(BOB, organizer=CAROL)
    cast.run(cast.alice)
    cast.run(cast.bob)
    Event.objects.get().delete()
    assert cast.run(cast.alice).remote_deleted == 1
    assert cast.run(cast.bob).remote_deleted == 1
    assert cast.events_of(ALICE) == [] and cast.events_of(BOB) == []
    assert_nothing_sent(cast.sim)


def test_a_copy_deleted_right_after_it_was_imported_does_not_come_back(cast: Cast) -> None:
    # Importing wrote the attendees into the CRM event, which the CRM does not read back:
    # that was taken for an edit in the CRM, and "the change wins" brought the copy back.
    alices = cast.meeting(ALICE, organizer=CAROL)
    cast.run(cast.alice)
    cast.sim.control.delete_item(alices)
    run = cast.run(cast.alice)
    assert (run.crm_deleted, run.remote_created) == (1, 0), \
        list(run.items.values_list("action", "detail"))
    assert Event.objects.count() == 0 and cast.events_of(ALICE) == []
    assert cast.run(cast.alice).items.count() == 0


def test_a_copy_deleted_right_after_it_was_linked_does_not_come_back(cast: Cast) -> None:
    # Linking to a CRM event of the same subject and start wrote the meeting's attendees and
    # UID into it: the engine's own write, not a CRM user's edit.
    Event.objects.create(organization_id=cast.alice.organization_id,
                         owner=cast.alice.crm_user, subject="Review", start=at(3, 14),
                         end=at(3, 15), time_zone="Europe/Prague")
    alices = cast.meeting(ALICE, organizer=CAROL)
    first = cast.run(cast.alice)
    assert first.linked == 1 and participants(Event.objects.get()) == [ALICE, BOB]
    cast.sim.control.delete_item(alices)
    run = cast.run(cast.alice)
    assert (run.crm_deleted, run.remote_created) == (1, 0), \
        list(run.items.values_list("action", "detail"))
    assert Event.objects.count() == 0 and cast.events_of(ALICE) == []
