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
from engine.models import Run
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
