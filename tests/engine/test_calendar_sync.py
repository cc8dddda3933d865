"""Calendar end to end: the runner, the built-in CRM and ewsim over HTTP, a real database."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from crm.models import Event, EventCategory, EventStatus, Person
from engine.models import Link, Run
from ewsim.testing import SimHandle

from .sync_helpers import exchange_events, make_profile, run_calendar

pytestmark = pytest.mark.django_db(transaction=True)
PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
TODAY = dt.date(2026, 11, 25)


def at(days: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(TODAY + dt.timedelta(days=days), dt.time(hour, minute), PRAGUE)


def utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_exchange_event(sim: SimHandle, subject: str, start: dt.datetime, hours: float = 1,
                       extra: str = "", mailbox: str | None = None) -> str:
    end = start + dt.timedelta(hours=hours)
    xml = (f"<t:CalendarItem><t:Subject>{subject}</t:Subject>{extra}"
           f"<t:Start>{utc(start)}</t:Start><t:End>{utc(end)}</t:End>"
           '<t:StartTimeZone Id="Central Europe Standard Time"/>'
           '<t:EndTimeZone Id="Central Europe Standard Time"/></t:CalendarItem>')
    return sim.control.create_item(mailbox or sim.user, folder="calendar", xml=xml,
                                   tag="CalendarItem")["id"]


def assert_no_invitations(sim: SimHandle) -> None:
    """ewsim records every request that could send mail: none may ask to send anything."""
    sent = [entry for entry in sim.control.sent()
            if entry.get("disposition") or entry.get("send_meeting_invitations",
                                                     "SendToNone") != "SendToNone"
            or entry.get("send_meeting_cancellations", "SendToNone") != "SendToNone"]
    assert sent == []


def configure(profile, **values: object) -> None:  # type: ignore[no-untyped-def]
    settings = profile.calendarsettings
    for name, value in values.items():
        setattr(settings, name, value)
    settings.save()


def crm_event(profile, subject: str, start: dt.datetime, **fields: object) -> Event:  # type: ignore[no-untyped-def]
    return Event.objects.create(organization_id=profile.organization_id,
                                owner=profile.crm_user, subject=subject, start=start,
                                end=start + dt.timedelta(hours=1), time_zone="Europe/Prague",
                                **fields)


def test_a_first_sync_copies_events_in_the_window_both_ways(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    hotline = EventCategory.objects.create(organization_id=profile.organization_id,
                                           name="HOTLINE")
    incoming = EventStatus.objects.create(organization_id=profile.organization_id,
                                          name="Příchozí")
    configure(profile, default_category=hotline, imported_status=incoming)
    jana = Person.objects.create(organization_id=profile.organization_id, first_name="Jana",
                                 email1="jana@acme.cz")
    attendees = ("<t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>jana@acme.cz"
                 "</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees>")
    add_exchange_event(ewsim, "Schůzka", at(1, 10), extra=attendees)
    add_exchange_event(ewsim, "Far away", at(90, 10))
    crm_event(profile, "Call Eva", at(2, 14), category=hotline)
    run = run_calendar(ewsim, profile, today=TODAY)
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.crm_created, run.remote_created) == (1, 1)
    imported = Event.objects.get(subject="Schůzka")
    assert imported.category == hotline and imported.status == incoming
    assert list(imported.persons.all()) == [jana]
    assert imported.start == at(1, 10) and imported.time_zone == "Europe/Prague"
    exported = next(e for e in exchange_events(ewsim).values() if e.subject == "Call Eva")
    assert exported.categories == ("HOTLINE",)
    assert_no_invitations(ewsim)
    ewsim.control.reset_counters()
    again = run_calendar(ewsim, profile, today=TODAY)
    assert again.items.count() == 0, list(again.items.values_list("action", "title", "detail"))
    assert again.requests <= 2, ewsim.control.counters()


def test_an_event_entering_the_window_is_matched_not_duplicated(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_event(ewsim, "Later", at(40, 9))
    crm_event(profile, "Later", at(40, 9))
    assert run_calendar(ewsim, profile, today=TODAY).items.count() == 0   # outside the window
    run = run_calendar(ewsim, profile, today=TODAY + dt.timedelta(days=20))
    assert run.linked == 1 and (run.crm_created, run.remote_created) == (0, 0)
    assert Event.objects.count() == 1 and len(exchange_events(ewsim)) == 1


def test_an_event_leaving_the_window_is_left_alone(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_event(ewsim, "Soon", at(1, 9))
    run_calendar(ewsim, profile, today=TODAY)
    run = run_calendar(ewsim, profile, today=TODAY + dt.timedelta(days=60))
    assert run.crm_deleted == 0 and run.remote_deleted == 0
    assert Event.objects.count() == 1 and len(exchange_events(ewsim)) == 1


def test_a_recurring_series_travels_with_its_exceptions(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    monday = at(-7 - TODAY.weekday(), 9)
    master = crm_event(profile, "Porada", monday, recurrence={
        "pattern": {"type": "weekly", "interval": 1, "weekdays": ["Monday"]},
        "range": {"start": monday.date().isoformat(), "end": None, "count": 6}},
        deleted_occurrences=[(monday + dt.timedelta(weeks=2)).astimezone(dt.UTC).isoformat()])
    Event.objects.create(organization_id=profile.organization_id, owner=profile.crm_user,
                         subject="Porada (moved)", recurrence_master=master,
                         original_start=monday + dt.timedelta(weeks=1),
                         start=monday + dt.timedelta(weeks=1, hours=2),
                         end=monday + dt.timedelta(weeks=1, hours=3))
    run = run_calendar(ewsim, profile, today=TODAY)
    assert run.remote_created == 1, list(run.items.values_list("action", "detail"))
    (series,) = exchange_events(ewsim).values()
    assert series.recurrence is not None and series.recurrence.count == 6
    assert [e.subject for e in series.exceptions] == ["Porada (moved)"]
    assert len(series.deleted_occurrences) == 1
    assert run_calendar(ewsim, profile, today=TODAY).items.count() == 0


def test_one_meeting_attended_by_two_users_is_one_crm_event(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    from django.contrib.auth.models import User

    from crm.models import CrmUser
    from profiles.models import SyncProfile

    ewsim.control.add_user("bob@example.com", "bob-pw")
    bob = SyncProfile.objects.create(
        organization_id=profile.organization_id, mailbox="bob@example.com",
        user=User.objects.create_user("bob"), connection=profile.connection,
        crm_user=CrmUser.objects.create(organization_id=profile.organization_id, name="Bob",
                                        login="bob"))
    uid = "<t:UID>040000008200E00074C5B7101A82E0080000000012345</t:UID>"
    add_exchange_event(ewsim, "Review", at(3, 14), extra=uid)
    add_exchange_event(ewsim, "Review", at(3, 14), extra=uid, mailbox="bob@example.com")
    run_calendar(ewsim, profile, today=TODAY)
    run = run_calendar(ewsim, bob, today=TODAY)
    assert run.linked == 1 and run.crm_created == 0, list(run.items.values_list("action"))
    assert Event.objects.count() == 1
    assert Link.objects.filter(crm_key=str(Event.objects.get().pk)).count() == 2


def test_deleting_an_event_deletes_it_on_the_other_side_by_default(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    item_id = add_exchange_event(ewsim, "Cancelled", at(2, 9))
    kept = crm_event(profile, "Kept", at(3, 9))
    run_calendar(ewsim, profile, today=TODAY)
    ewsim.control.delete_item(item_id)
    kept.delete()
    run = run_calendar(ewsim, profile, today=TODAY)
    assert (run.crm_deleted, run.remote_deleted) == (1, 1), run.message
    assert Event.objects.count() == 0 and exchange_events(ewsim) == {}
    assert_no_invitations(ewsim)


def test_private_events_can_be_left_out(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    configure(profile, skip_private=True)
    add_exchange_event(ewsim, "Lékař", at(1, 7), extra="<t:Sensitivity>Private</t:Sensitivity>")
    add_exchange_event(ewsim, "Porada", at(1, 9))
    crm_event(profile, "Soukromé", at(2, 9), private=True)
    run = run_calendar(ewsim, profile, today=TODAY)
    assert [e.subject for e in Event.objects.order_by("subject")] == ["Porada", "Soukromé"]
    exported = next(e for e in exchange_events(ewsim).values() if e.subject == "Soukromé")
    assert exported.private and run.remote_created == 1


def test_only_paired_categories_map_both_ways(ewsim: SimHandle) -> None:
    from profiles.models import CategoryPairing

    profile = make_profile(ewsim)
    hotline = EventCategory.objects.create(organization_id=profile.organization_id,
                                           name="HOTLINE")
    CategoryPairing.objects.create(profile=profile, crm_category=hotline,
                                   exchange_category="Hotline")
    configure(profile, scope="paired")
    paired = "<t:Categories><t:String>Hotline</t:String></t:Categories>"
    add_exchange_event(ewsim, "Support call", at(1, 9), extra=paired)
    add_exchange_event(ewsim, "Lunch", at(1, 12))
    crm_event(profile, "Callback", at(2, 9), category=hotline)
    crm_event(profile, "Internal", at(2, 11))
    run = run_calendar(ewsim, profile, today=TODAY)
    assert (run.crm_created, run.remote_created) == (1, 1)
    assert Event.objects.get(subject="Support call").category == hotline
    exported = next(e for e in exchange_events(ewsim).values() if e.subject == "Callback")
    assert exported.categories == ("Hotline",)


def test_a_series_from_exchange_keeps_its_wall_clock_across_dst(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    configure(profile, days_past=200, days_future=200)
    first = dt.datetime(2026, 3, 23, 9, tzinfo=PRAGUE)    # CET, DST starts on 29 March
    recurrence = ("<t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval>"
                  "<t:DaysOfWeek>Monday</t:DaysOfWeek></t:WeeklyRecurrence>"
                  "<t:NumberedRecurrence><t:StartDate>2026-03-23</t:StartDate>"
                  "<t:NumberOfOccurrences>4</t:NumberOfOccurrences></t:NumberedRecurrence>"
                  "</t:Recurrence>")
    add_exchange_event(ewsim, "Weekly", first, extra=recurrence)
    run = run_calendar(ewsim, profile, today=dt.date(2026, 4, 1))
    assert run.crm_created == 1, list(run.items.values_list("action", "detail"))
    series = Event.objects.get()
    assert series.start == first and series.time_zone == "Europe/Prague"
    from engine.crmstore.builtin_events import rule_from_json
    from engine.recurrence import occurrences

    starts = [s.astimezone(PRAGUE).hour for _, s in occurrences(
        rule_from_json(series.recurrence), series.start, series.time_zone)]
    assert starts == [9, 9, 9, 9]


def test_bad_events_are_recorded_and_the_run_goes_on(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_event(ewsim, "Backwards", at(1, 10), hours=-1)
    add_exchange_event(ewsim, "", at(1, 11), hours=0)             # no subject, zero length
    many = "".join(f"<t:Attendee><t:Mailbox><t:EmailAddress>p{i}@x.cz</t:EmailAddress>"
                   "</t:Mailbox></t:Attendee>" for i in range(500))
    add_exchange_event(ewsim, "Town hall", at(2, 10),
                       extra=f"<t:RequiredAttendees>{many}</t:RequiredAttendees>")
    add_exchange_event(ewsim, "Fine", at(2, 12))
    run = run_calendar(ewsim, profile, today=TODAY)
    assert run.status == Run.Status.PARTIAL, run.message
    assert run.errors == 1 and "no valid start and end" in run.items.get(action="error").detail
    assert sorted(e.subject for e in Event.objects.all()) == ["", "Fine", "Town hall"]


def test_an_unknown_time_zone_is_reported_on_the_item_not_shifted(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    start = at(1, 10)
    xml = ("<t:CalendarItem><t:Subject>Custom zone</t:Subject>"
           f"<t:Start>{utc(start)}</t:Start><t:End>{utc(start + dt.timedelta(hours=1))}"
           '</t:End><t:StartTimeZone Id="Customized Time Zone"/>'
           '<t:EndTimeZone Id="Customized Time Zone"/></t:CalendarItem>')
    ewsim.control.create_item(ewsim.user, folder="calendar", xml=xml, tag="CalendarItem")
    run = run_calendar(ewsim, profile, today=TODAY)
    event = Event.objects.get()
    assert event.start == start                       # the UTC instant is kept as it was
    assert "Time zone:" in run.items.get(action="create_crm").detail


def test_with_all_events_only_the_crm_category_goes_to_exchange(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    hotline, registrace = (EventCategory.objects.create(
        organization_id=profile.organization_id, name=name) for name in ("HOTLINE",
                                                                         "REGISTRACE"))
    configure(profile, default_category=hotline)
    item_id = add_exchange_event(ewsim, "Call", at(1, 9))
    run_calendar(ewsim, profile, today=TODAY)
    event = Event.objects.get()
    assert event.category == hotline
    ewsim.control.update_item(item_id, Categories=["Personal"])
    run_calendar(ewsim, profile, today=TODAY)
    event.refresh_from_db()
    assert event.category == hotline                  # an Exchange category never changes it
    event.category = registrace
    event.save()
    run_calendar(ewsim, profile, today=TODAY)
    assert exchange_events(ewsim)[item_id].categories == ("REGISTRACE",)
